# Cortex-M4F bare metal for QEMU `-machine mps2-an386` (see platform/m4 and export/qemu.py).
# No heap: newlib-nano's libc and libm only, over the heap-free system layer in platform/m4/syscalls.c.
M4_STACK_BYTES ?= 4096
# The device image's stack: its deepest path (a window's inference with the rhythm figures, or a host
# frame's decoding) measured 1.1 KB (device_firmware's counters, stack_bytes); 3 KiB keeps it under 48 KiB of RAM.
M4_DEVICE_STACK_BYTES ?= 3072
$(BUILD)/device_firmware.elf: M4_STACK_BYTES = $(M4_DEVICE_STACK_BYTES)
M4_DIR := $(FW)/platform/m4
SEMIHOST_DIR := $(FW)/platform/semihost
CC := arm-none-eabi-gcc
M4_ARCH := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
TARGET_CFLAGS := $(M4_ARCH) -O2 -g --specs=nano.specs -ffunction-sections -fdata-sections -I$(M4_DIR) -I$(SEMIHOST_DIR)
TARGET_LDFLAGS = -nostartfiles -T $(M4_DIR)/mps2_an386.ld -Wl,--defsym=M4_STACK_BYTES=$(M4_STACK_BYTES) \
  -Wl,--gc-sections -lm -lc -lgcc
PLATFORM_SRCS := $(wildcard $(M4_DIR)/*.c $(SEMIHOST_DIR)/*.c)
EXE := .elf
PROGRAMS := $(HARNESS_PROGRAMS)
# Code that runs once or per frame (the app, the protocol, the signal model, the harness and the
# platform layer), not per sample or per MAC, is built for size, as the Arduino cores build everything:
# the image with the default student must fit 96 KiB of flash.
M4_SIZE_SRCS := $(SRC)/ecg_app.c $(SRC)/ecg_protocol.c $(SRC)/ecg_signal_model.c $(wildcard $(FW)/harness/*.c) $(PLATFORM_SRCS)
$(patsubst $(FW)/%.c,$(BUILD)/obj/%.o,$(M4_SIZE_SRCS)): CFLAGS += -Os
