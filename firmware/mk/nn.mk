# Native int8 kernels and the model interpreter (ecg_edge/src/nn).
#
# Compile-time options (pass with EXTRA_CFLAGS):
#   -DNN_FORCE_PORTABLE=1    the plain-loop kernels everywhere (no im2col / SMLAD / lookup tables)
#   -DNN_MAX_OPS=N           op slots in nn_model (default 48; the Makefile sizes it from GEN's model)
#   -DNN_MAX_TENSORS=N       tensor slots in nn_model (default 96; likewise)
#   -DNN_SINGLE_ROUNDING=1   TFLITE_SINGLE_ROUNDING arithmetic (the tflite-micro wheel rounds twice)
#   -DNN_TEST_WRONG_ROUNDING=1  a deliberately wrong rounding divide, for the tests only
# The Cortex-M4 DSP instructions are used whenever the compiler defines __ARM_FEATURE_DSP.
NN_SRCS := $(wildcard $(SRC)/nn/*.c)
