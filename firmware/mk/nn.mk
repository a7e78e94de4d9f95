# Native int8 kernels and the model interpreter (ecg_edge/src/nn).
NN_SRCS := $(wildcard $(SRC)/nn/*.c)
