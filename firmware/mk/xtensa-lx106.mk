# Xtensa lx106 (the ESP8266's core; the ESP32's LX6 is the same GCC family) with Debian's
# gcc-xtensa-lx106 and picolibc-xtensa-lx106-elf, for QEMU `-M sim -cpu lx106 -semihosting`
# (platform/xtensa; tests/test_firmware_xtensa.py). No heap: picolibc's libc only.
#
# Every core, nn and generated source compiles here (libecgcore.a, libnn.a). Debian's libgcc.a for
# lx106 leaves out what the ESP8266's mask ROM provides: the 32-bit division, 64-bit multiplication
# and division and the software floating point (__adddf3, __muldf3, ...). QEMU has no such ROM, so
# platform/xtensa supplies them (libgcc_gaps.c, softfloat.c, each checked bit for bit by the tests).
# Not linked: device_firmware (no UART/timer layer, rt_device.h, for this platform) and m4_selftest
# (its abort() needs a signal layer; platform/xtensa/selftest/xt_selftest.c tests this platform).
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
PROGRAMS := nn_runner stream_runner device_image proto_tool xt_selftest

# The platform's self-test (arguments, files, exit status, counter, integer helpers, faults).
.DEFAULT_GOAL := programs
$(BUILD)/xt_selftest.elf: $(BUILD)/obj/platform/xtensa/selftest/xt_selftest.o $(patsubst $(FW)/%.c,$(BUILD)/obj/%.o,$(PLATFORM_SRCS))
	$(CC) $(CFLAGS) $^ $(TARGET_LDFLAGS) -o $@
