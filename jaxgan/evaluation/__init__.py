"""Sample-quality measures shared by the training monitors and the evaluation tools."""
