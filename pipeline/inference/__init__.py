"""Running a checkpoint on windows and on recordings (`predict`), and the device's whole path in Python (`device_path`)."""
