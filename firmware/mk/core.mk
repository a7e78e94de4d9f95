# The portable core below ecg_edge/src (preprocessing, quality, inference interface), without nn/.
CORE_SRCS := $(wildcard $(SRC)/*.c)
# Harness programs that link the core (they need GEN).
CORE_PROGRAMS := stream_runner device_image proto_tool device_firmware
