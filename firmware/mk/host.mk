# Host build: the core as a native program (tests, the virtual device).
CC := cc
TARGET_CFLAGS := -O2 -g
TARGET_LDFLAGS := -lm
PLATFORM_SRCS := $(FW)/platform/host/rt_io_host.c $(FW)/platform/host/rt_device_host.c
EXE :=
PROGRAMS := $(HARNESS_PROGRAMS)
