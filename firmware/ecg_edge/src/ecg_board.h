/* Board-dependent build switches of the portable core, decided from the compiler's own macros so
 * that an Arduino IDE user gets the right build without editing anything or passing flags.
 *
 *   ECG_APP_NO_MODEL  1 on 8-bit AVR (Arduino Uno, Nano, Mega, Nano Every): 2-8 KB of RAM cannot hold
 *                     a 2500-sample window and the model's arena, and their 16-bit size_t cannot even
 *                     declare the model arrays. The app then only streams SAMPLES and its INFO says
 *                     capabilities 0, backend "none" (ecg_app.h). 0 everywhere else.
 *   ECG_APP_RING_SAMPLES  64 on 8-bit AVR (256 ms of samples in 128 bytes: the Uno's main loop never
 *                     blocks longer than one INFO frame, 10 ms); ecg_app.h's default elsewhere.
 *   ECG_BACKEND_TFLM  0: the native int8 kernels (nn/). 1: TensorFlow Lite Micro with the bundle's
 *                     flatbuffer (install a TFLM Arduino library; see ecg_edge.ino). Set it here for
 *                     the Arduino IDE: every file that tests it includes this header first.
 *
 * A definition on the command line (-DECG_APP_NO_MODEL=1, e.g. a PlatformIO build_flags entry)
 * wins, and so does an ecg_app_config.h (ecg_app.h). ecg_app.h and the inference backends include
 * this header before they use these switches; it has no Arduino dependency and is plain C99.
 */
#ifndef ECG_BOARD_H
#define ECG_BOARD_H

#if !defined(ECG_APP_NO_MODEL)
#if defined(__AVR__) || defined(ARDUINO_ARCH_AVR) || defined(ARDUINO_ARCH_MEGAAVR)
#define ECG_APP_NO_MODEL 1
#else
#define ECG_APP_NO_MODEL 0
#endif
#endif

#if !defined(ECG_APP_RING_SAMPLES) && (defined(__AVR__) || defined(ARDUINO_ARCH_AVR) || defined(ARDUINO_ARCH_MEGAAVR))
#define ECG_APP_RING_SAMPLES 64
#endif

#if !defined(ECG_BACKEND_TFLM)
#define ECG_BACKEND_TFLM 0
#endif

#endif /* ECG_BOARD_H */
