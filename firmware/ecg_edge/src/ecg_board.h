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
 *   ECG_BEATS         1: the core runs the beat detector (ecg_beats.h): BEATS frames and every RESULT
 *                     with the window's heart rate (INFO capability BEATS). 0: no detector (the host
 *                     finds beats itself). 1 by default, except on the SAMD21 (0): its 2.2 KB (state
 *                     and beat log, ECG_RAM_BEATS_BYTES) would push the mcu_tiny student over its RAM.
 *                     Without a model (ECG_APP_NO_MODEL) there is no core and no detector.
 *   ECG_BOARD_RAM_BYTES, ECG_BOARD_RESERVE_BYTES, ECG_BOARD_NAME  the board's RAM (datasheet), what
 *                     its core, the sketch and the stacks take besides the firmware's budget, and a
 *                     name for messages; known for every board the sketch has a timer for (below).
 *
 * The model's RAM meets the board's RAM here, before the linker: the generated ecg_config.h carries
 * the firmware's static RAM for the bundle (ECG_MODEL_RAM_BYTES: native arena + app state + model
 * tables, export/ram.py). On a board where it does not fit, the build stops with #error lines
 * that state the numbers (the bundle's from the generated ecg_ram_error.h, the board's here) and
 * the two ways out: a smaller student, or the samples-only build (ECG_APP_NO_MODEL=1) with
 * classification on the host. Why an #error there, and samples-only by default on AVR: no AVR can
 * ever hold a model (the filtered window alone is 10 KB of float32), so there is nothing to decide
 * and the Uno streams SAMPLES as it always did; a SAMD21's 32 KB could hold a student with a small
 * enough arena (about 8 KB with today's app state), so dropping the model without a word would hide
 * that the bundle the user exported does not run: the build says so and lets them choose.
 *
 * A definition on the command line (-DECG_APP_NO_MODEL=1, e.g. a PlatformIO build_flags entry)
 * wins, and so does an ecg_app_config.h next to this header (the Arduino IDE's way: a file holding
 * `#define ECG_APP_NO_MODEL 1`). ecg_app.h and the inference backends include this header before
 * they use these switches; it has no Arduino dependency and is plain C99.
 */
#ifndef ECG_BOARD_H
#define ECG_BOARD_H

#if defined(__has_include)
#if __has_include("ecg_app_config.h")
#include "ecg_app_config.h" /* the IDE user's settings, before the defaults below */
#endif
#endif

#if defined(__AVR__) || defined(ARDUINO_ARCH_AVR) || defined(ARDUINO_ARCH_MEGAAVR)
#define ECG_BOARD_AVR 1
#else
#define ECG_BOARD_AVR 0
#endif

#if !defined(ECG_APP_NO_MODEL)
#if ECG_BOARD_AVR
#define ECG_APP_NO_MODEL 1
#else
#define ECG_APP_NO_MODEL 0
#endif
#endif

#if !defined(ECG_APP_RING_SAMPLES) && ECG_BOARD_AVR
#define ECG_APP_RING_SAMPLES 64
#endif

#if !defined(ECG_BACKEND_TFLM)
#define ECG_BACKEND_TFLM 0
#endif

#if !defined(ECG_BEATS)
#if defined(ARDUINO_ARCH_SAMD) && !defined(__SAMD51__)
#define ECG_BEATS 0
#else
#define ECG_BEATS 1
#endif
#endif

/* ---- each supported board's RAM (datasheet figures) --------------------------------------------
 * The reserve is what the board's core, the sketch's own data and the stacks need besides the
 * firmware's budget (ECG_MODEL_RAM_BYTES counts the ecg_app struct, the arena and nn_model only). */
#if !defined(ECG_BOARD_RAM_BYTES)
#if ECG_BOARD_AVR
#if defined(__AVR_ATmega2560__) || defined(__AVR_ATmega1280__)
#define ECG_BOARD_RAM_BYTES 8192 /* ATmega2560 datasheet: 8 KB SRAM (Mega) */
#elif defined(__AVR_ATmega4809__)
#define ECG_BOARD_RAM_BYTES 6144 /* ATmega4809 datasheet: 6 KB SRAM (Nano Every, Uno WiFi Rev2) */
#elif defined(__AVR_ATmega32U4__)
#define ECG_BOARD_RAM_BYTES 2560 /* ATmega32U4 datasheet: 2.5 KB SRAM (Leonardo, Micro) */
#else
#define ECG_BOARD_RAM_BYTES 2048 /* ATmega328P datasheet: 2 KB SRAM (Uno, Nano); other AVRs: at most this much assumed */
#endif
#define ECG_BOARD_RESERVE_BYTES 512 /* the stack and the core's serial buffers */
#define ECG_BOARD_NAME "8-bit AVR"
#elif defined(ARDUINO_ARCH_SAMD) && !defined(__SAMD51__)
#define ECG_BOARD_RAM_BYTES 32768 /* ATSAMD21G18A datasheet (DS40001882): 32 KB SRAM (Zero, MKR, Nano 33 IoT) */
/* ArduinoCore-samd 1.8.14's link of this sketch: 3,044 B of the core's and the sketch's own data
 * besides the budget (USB CDC buffers, Serial), and 2 KB for the stack. */
#define ECG_BOARD_RESERVE_BYTES 5120
#define ECG_BOARD_NAME "SAMD21 (Arduino Zero, MKR)"
#elif defined(NRF52840_XXAA) || defined(ARDUINO_ARCH_NRF52840)
#define ECG_BOARD_RAM_BYTES 262144 /* nRF52840 product specification: 256 KB RAM (Nano 33 BLE) */
#define ECG_BOARD_RESERVE_BYTES 49152 /* mbed OS: the Nano RP2040 Connect link had 43.8 KB besides the budget */
#define ECG_BOARD_NAME "nRF52840 (Nano 33 BLE)"
#elif defined(ARDUINO_ARCH_RP2040) && defined(PICO_RP2350)
#define ECG_BOARD_RAM_BYTES 532480 /* RP2350 datasheet: 520 KB SRAM */
#define ECG_BOARD_RESERVE_BYTES 49152
#define ECG_BOARD_NAME "RP2350"
#elif defined(ARDUINO_ARCH_RP2040)
#define ECG_BOARD_RAM_BYTES 270336 /* RP2040 datasheet: 264 KB SRAM (Pico, Nano RP2040 Connect) */
#define ECG_BOARD_RESERVE_BYTES 49152 /* mbed OS on the Nano RP2040 Connect: 43.8 KB besides the budget */
#define ECG_BOARD_NAME "RP2040"
#elif defined(ARDUINO_ARCH_ESP32)
#if defined(__has_include)
#if __has_include(<sdkconfig.h>)
#include <sdkconfig.h> /* CONFIG_IDF_TARGET_*: the chip (the core's include path has it) */
#endif
#endif
#if defined(CONFIG_IDF_TARGET_ESP32C3)
#define ECG_BOARD_RAM_BYTES 409600 /* ESP32-C3 datasheet: 400 KB SRAM (about 16 KB of it the cache) */
#define ECG_BOARD_NAME "ESP32-C3"
#else
#define ECG_BOARD_RAM_BYTES 327680 /* ESP32 datasheet: 520 KB SRAM, about 320 KB of it data RAM (DRAM) */
#define ECG_BOARD_NAME "ESP32"
#endif
#define ECG_BOARD_RESERVE_BYTES 65536 /* FreeRTOS, the sampler and app task stacks, Serial's 2 KB buffer */
#endif
#endif /* !ECG_BOARD_RAM_BYTES */

#if defined(ECG_BOARD_RAM_BYTES) && !defined(ECG_BOARD_RESERVE_BYTES)
#define ECG_BOARD_RESERVE_BYTES 4096 /* a board named with -DECG_BOARD_RAM_BYTES=N: a stack and a little more */
#endif
#if defined(ECG_BOARD_RAM_BYTES) && !defined(ECG_BOARD_NAME)
#define ECG_BOARD_NAME "this board"
#endif

/* ---- the fit check: the bundle's RAM budget against the board ------------------------------------ */
#if defined(ECG_BOARD_RAM_BYTES) && !ECG_APP_NO_MODEL
#include "ecg_generated.h"
#if !defined(ECG_MODEL_RAM_BYTES)
#error "ecg-edge: src/generated/ecg_config.h has no RAM budget (ECG_MODEL_RAM_BYTES): it predates this sketch. Run again: ecg-export firmware --bundle <your bundle> --out firmware/ecg_edge/src/generated"
#endif
#if ECG_BACKEND_TFLM
#define ECG_BOARD_MODEL_RAM_ALL ECG_MODEL_RAM_BYTES_TFLM
#else
#define ECG_BOARD_MODEL_RAM_ALL ECG_MODEL_RAM_BYTES
#endif
#if ECG_BEATS
#define ECG_BOARD_MODEL_RAM ECG_BOARD_MODEL_RAM_ALL
#else
#define ECG_BOARD_MODEL_RAM (ECG_BOARD_MODEL_RAM_ALL - ECG_RAM_BEATS_BYTES)
#endif
#if ECG_BOARD_MODEL_RAM + ECG_BOARD_RESERVE_BYTES > ECG_BOARD_RAM_BYTES
/* #error does not expand macros, and the Arduino IDE stops at its preprocessing step, which does not
 * print "#pragma message" notes: the numbers are written into the messages. The model's come from a
 * generated header that holds one #error (the bundle's figures), the board's from the lines below. */
#if defined(__has_include)
#if __has_include("ecg_ram_error.h")
#include "ecg_ram_error.h"
#elif __has_include("generated/ecg_ram_error.h")
#include "generated/ecg_ram_error.h"
#endif
#endif
#if ECG_BOARD_AVR && ECG_BOARD_RAM_BYTES == 2048
#error "ecg-edge: an 8-bit AVR with 2048 B of RAM (Uno, Nano) cannot hold the model. Ways out: the samples-only build (the AVR default: do not set ECG_APP_NO_MODEL to 0) with classification on the host (ecg-host monitor --model <your bundle>)."
#elif ECG_BOARD_AVR
#error "ecg-edge: an 8-bit AVR (2560 to 8192 B of RAM) cannot hold the model. Ways out: the samples-only build (the AVR default: do not set ECG_APP_NO_MODEL to 0) with classification on the host (ecg-host monitor --model <your bundle>)."
#elif ECG_BOARD_RAM_BYTES == 32768 && ECG_BOARD_RESERVE_BYTES == 5120
#error "ecg-edge: the model does not fit the SAMD21 (Arduino Zero, MKR): 32768 B of RAM, 5120 B of them taken by the core, the sketch and the stack, leave 27648 B for the RAM the line above gives. Ways out: export a smaller student (its arena must shrink by the difference; ecg-pipeline models lists activation bytes), or build samples-only with classification on the host: put #define ECG_APP_NO_MODEL 1 in src/ecg_app_config.h (Arduino IDE) or pass -DECG_APP_NO_MODEL=1 (PlatformIO build_flags), then run ecg-host monitor --model <your bundle>."
#else
#error "ecg-edge: the model does not fit this board's RAM (ECG_BOARD_RAM_BYTES less ECG_BOARD_RESERVE_BYTES in src/ecg_board.h) for the RAM the line above gives. Ways out: export a smaller student, or build samples-only with classification on the host: put #define ECG_APP_NO_MODEL 1 in src/ecg_app_config.h (Arduino IDE) or pass -DECG_APP_NO_MODEL=1 (PlatformIO build_flags), then run ecg-host monitor --model <your bundle>."
#endif
#endif
#endif

#endif /* ECG_BOARD_H */
