# Cortex-M4F bare metal for QEMU `-machine mps2-an386` (see platform/m4 and export/qemu.py).
# No heap: newlib-nano's libc and libm only, over the heap-free system layer in platform/m4/syscalls.c.
M4_STACK_BYTES ?= 4096
M4_DIR := $(FW)/platform/m4
CC := arm-none-eabi-gcc
M4_ARCH := -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard
TARGET_CFLAGS := $(M4_ARCH) -O2 -g --specs=nano.specs -ffunction-sections -fdata-sections -I$(M4_DIR)
TARGET_LDFLAGS := -nostartfiles -T $(M4_DIR)/mps2_an386.ld -Wl,--defsym=M4_STACK_BYTES=$(M4_STACK_BYTES) \
  -Wl,--gc-sections -lm -lc -lgcc
PLATFORM_SRCS := $(wildcard $(M4_DIR)/*.c)
EXE := .elf
PROGRAMS := $(HARNESS_PROGRAMS)
