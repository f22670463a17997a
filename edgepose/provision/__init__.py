"""Provisioning: turn a stock Raspberry Pi OS image into a card that boots into the edgepose service.

* :mod:`.bundle` - the offline payload (``edgepose bundle``): the edgepose wheel built
  from this checkout, aarch64 wheels of every runtime dependency, models, configs,
  ``firstboot.sh`` and a sha256 manifest;
* :mod:`.image` - the partition table and the FAT boot partition of an image file,
  edited without root and without mounting (mtools);
* :mod:`.firstboot` - cloud-init files or Raspberry Pi Imager's ``firstrun.sh`` flow,
  and the camera lines of ``config.txt``;
* :mod:`.secrets` - WPA PSK and SHA-512 crypt hashes (plain secrets never stored);
* :mod:`.disks` - which block device may be written (from ``lsblk --json -b``);
* :mod:`.write` - writing an image to a card with read-back verification;
* :mod:`.flash` - ``edgepose flash``: all of the above on a copy of the image.
"""
