"""Training, video-grouped evaluation, reports and int8 export of the action classifier (workstation side).

The device runs the exported ``.tflite`` with :class:`edgepose.actions.classifier.ActionClassifier`.
"""
