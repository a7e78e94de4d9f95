"""Running a checkpoint on windows and on recordings (`predict`)."""
