# Xtensa lx106 (the ESP8266's core; the ESP32's LX6 is the same GCC family) with Debian's
# gcc-xtensa-lx106 and picolibc-xtensa-lx106-elf, for QEMU `-M sim -cpu lx106 -semihosting`
# (platform/xtensa; tests/test_firmware_xtensa.py). No heap: picolibc's libc only.
#
# Every core, nn and generated source compiles here (libecgcore.a, libnn.a). Debian's libgcc.a for
# lx106 leaves out what the ESP8266's ROM provides, the software floating point among it (__adddf3,
# __muldf3, ...; platform/xtensa/libgcc_gaps.c supplies the integer helpers only), so only the integer
# programs link: nn_runner and the platform's self-test. The programs that preprocess (double
# arithmetic) compile, but do not link.
XT_DIR := $(FW)/platform/xtensa
XT_STACK_BYTES ?= 4096
XT_PICOLIBC_SPECS ?= /usr/lib/xtensa-lx106-elf/picolibc.specs
CC := xtensa-lx106-elf-gcc
# The code generation flags of the Arduino ESP8266 core (long calls, literals beside the code).
XT_ARCH := -mlongcalls -mtext-section-literals
TARGET_CFLAGS := $(XT_ARCH) -O2 -g --specs=$(XT_PICOLIBC_SPECS) -ffunction-sections -fdata-sections -I$(XT_DIR)
TARGET_LDFLAGS = -nostartfiles -T $(XT_DIR)/lx106_sim.ld -Wl,--defsym=XT_STACK_BYTES=$(XT_STACK_BYTES) \
  -Wl,--gc-sections -lc -lgcc
PLATFORM_SRCS := $(wildcard $(XT_DIR)/*.c)
EXE := .elf
PROGRAMS := nn_runner xt_selftest

# The platform's self-test (arguments, files, exit status, counter, integer helpers, faults).
.DEFAULT_GOAL := programs
$(BUILD)/xt_selftest.elf: $(BUILD)/obj/platform/xtensa/selftest/xt_selftest.o $(patsubst $(FW)/%.c,$(BUILD)/obj/%.o,$(PLATFORM_SRCS))
	$(CC) $(CFLAGS) $^ $(TARGET_LDFLAGS) -o $@
