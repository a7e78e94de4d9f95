# Host build with AddressSanitizer and UndefinedBehaviorSanitizer; any report aborts the program.
CC := cc
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
TARGET_CFLAGS := -O1 -g $(SAN)
TARGET_LDFLAGS := $(SAN) -lm
PLATFORM_SRCS := $(FW)/platform/host/rt_io_host.c $(FW)/platform/host/rt_device_host.c
EXE :=
PROGRAMS := $(HARNESS_PROGRAMS)
