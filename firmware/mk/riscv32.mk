# RV32IMC bare metal (soft float, as the ESP32-C3) for QEMU `-machine virt -bios none` (see
# platform/rv32 and export/qemu.py). picolibc's libc and libm (its rv32im/ilp32 multilib: Debian's
# toolchain has no rv32imc one, so library code is uncompressed), no heap, our own start-up.
RV32_STACK_BYTES ?= 4096
# The device image's stack, as M4_DEVICE_STACK_BYTES (cortex-m4.mk): device_firmware's stack_bytes
# counter measured 1.0 KB here (tests/test_firmware_riscv.py runs it).
RV32_DEVICE_STACK_BYTES ?= 3072
$(BUILD)/device_firmware.elf: RV32_STACK_BYTES = $(RV32_DEVICE_STACK_BYTES)
RV32_DIR := $(FW)/platform/rv32
SEMIHOST_DIR := $(FW)/platform/semihost
CC := riscv64-unknown-elf-gcc
# ISA spec 2.2: the CSR instructions (the counter, the trap set-up) are part of I, as on the ESP32-C3.
RV32_ARCH := -march=rv32imc -mabi=ilp32 -misa-spec=2.2
# RT_PLATFORM_RV32: the harnesses' switch for this platform (__riscv alone would also take a RISC-V Linux host).
TARGET_CFLAGS := $(RV32_ARCH) -O2 -g --specs=picolibc.specs -ffunction-sections -fdata-sections \
  -fno-asynchronous-unwind-tables -I$(RV32_DIR) -I$(SEMIHOST_DIR) -DRT_PLATFORM_RV32=1
TARGET_LDFLAGS = -nostartfiles -T $(RV32_DIR)/virt.ld -Wl,--defsym=RV32_STACK_BYTES=$(RV32_STACK_BYTES) \
  -Wl,--gc-sections -lm -lc -lgcc
PLATFORM_SRCS := $(wildcard $(RV32_DIR)/*.c $(SEMIHOST_DIR)/*.c)
EXE := .elf
PROGRAMS := $(HARNESS_PROGRAMS)
# As on the Cortex-M4: code that runs once or per frame is built for size, the per-sample and
# per-MAC code for speed.
RV32_SIZE_SRCS := $(SRC)/ecg_app.c $(SRC)/ecg_protocol.c $(SRC)/ecg_signal_model.c $(wildcard $(FW)/harness/*.c) $(PLATFORM_SRCS)
$(patsubst $(FW)/%.c,$(BUILD)/obj/%.o,$(RV32_SIZE_SRCS)): CFLAGS += -Os
