// ecg-edge: AD8232 -> 250 Hz samples -> device filter -> window -> int8 ECG classifier -> serial.
//
// RESEARCH TOOL, NOT A MEDICAL DEVICE. It is not certified for any clinical use: never use its
// output to diagnose, treat or monitor anyone. The AD8232 must be powered from the board or a
// battery only; never connect electrodes on a person to anything plugged into mains power.
//
// This file is a thin Arduino shell: a 250 Hz timer, the ADC, the LO+/LO- lead-off pins and the
// serial port. Everything else (ring buffer, filter, window, z-score, quantization, model, binary
// serial protocol of firmware/PROTOCOL.md) is the portable C core in src/ (ecg_app.h).
//
// Before the first build, put a bundle's generated sources into src/generated/ (not committed):
//   ecg-export firmware --bundle <your bundle> --out firmware/ecg_edge/src/generated
// Without them the build stops with an #error that names this command.
//
// Wiring (AD8232 breakout -> board; defaults below, change them in the configuration block):
//   AD8232   ESP32 (esp32dev)    ESP32-C3 (DevKitM-1)   Arduino Nano 33 BLE   Arduino Uno
//   OUTPUT   GPIO36 (ADC1, VP)   GPIO3 (ADC1)           A0                    A0
//   LO+      GPIO34              GPIO6                  D10                   10
//   LO-      GPIO35              GPIO7                  D11                   11
//   3.3V     3V3                 3V3                    3.3V                  3.3V
//   GND      GND                 GND                    GND                   GND
// ESP32 family: OUTPUT must be an ADC1 pin (ADC2 does not work while Wi-Fi is on; the ESP32-C3's
// ADC1 is GPIO0-GPIO4). At the core's default 11 dB attenuation the ADC reads about 0-2.5 V (ESP-IDF's
// ADC guide); the AD8232's output rests at 1.65 V, and a clipped reading counts as saturated. The Uno's 2 KB of RAM
// cannot hold a model: its build only streams SAMPLES (INFO: capabilities 0, backend "none";
// src/ecg_board.h decides this from the compiler, nothing to edit). Where the bundle's model does
// not fit the board's RAM (a SAMD21's 32 KB with today's students) the build stops with the numbers
// and the ways out; samples-only there: a file src/ecg_app_config.h holding #define ECG_APP_NO_MODEL 1.
// Serial port: the native USB port (ECG_SERIAL below): on the Arduino Zero its "Native USB" port.
// The Arduino IDE's Serial Monitor and Plotter: the board speaks binary frames (ecg-host reads them).
// For the Serial Plotter put #define ECG_APP_TEXT 1 in src/ecg_app_config.h, or run
// `ecg-host plotter --port <port>` on a running board: then it prints ecg:<counts>,hr:<bpm>,lead_off:<0|1>
// per sample and a line per result (firmware/PROTOCOL.md, Text mode).
//
// Boards with a 250 Hz sample timer here: ESP32 family (the ESP32 and the ESP32-C3; Arduino-ESP32
// 1.x/2.x and 3.x timer APIs), mbed cores (Nano 33 BLE / nRF52840, Nano RP2040 Connect), AVR (Timer1),
// SAMD21 (TC3), RP2040/RP2350 (arduino-pico). Others stop with an #error. The host side is the ecg-host tool
// (`ecg-host ports` finds the board; see the README).

// ================================ configuration ================================================
// Every entry can also be set from the build (e.g. PlatformIO build_flags = -DECG_BAUD=230400).

// Signal source: the AD8232 on the pins below, or the built-in AD8232 signal model (src/
// ecg_signal_model.h: a synthetic ECG with the AD8232's offset and noise) when no hardware is wired.
#define ECG_SOURCE_AD8232 1
#define ECG_SOURCE_SIGNAL_MODEL 2
#ifndef ECG_SIGNAL_SOURCE
#define ECG_SIGNAL_SOURCE ECG_SOURCE_AD8232
#endif

// Pins: AD8232 OUTPUT (analog), LO+ and LO- (digital, high when an electrode is off).
#if !defined(ECG_PIN_OUTPUT) && defined(ARDUINO_ARCH_ESP32)
#if defined(CONFIG_IDF_TARGET_ESP32)
#define ECG_PIN_OUTPUT 36 // ADC1_CH0 (VP): works with Wi-Fi on
#define ECG_PIN_LO_PLUS 34
#define ECG_PIN_LO_MINUS 35
#elif defined(CONFIG_IDF_TARGET_ESP32C3)
// ESP32-C3-DevKitM-1: GPIO3 is ADC1_CH3 (header J1); GPIO6 and GPIO7 are plain inputs (J3). Not the
// strapping pins GPIO2, GPIO8, GPIO9, nor GPIO0/GPIO1 (the 32 kHz crystal on some modules).
#define ECG_PIN_OUTPUT 3
#define ECG_PIN_LO_PLUS 6
#define ECG_PIN_LO_MINUS 7
#else
#error "ecg-edge: choose an ADC1 pin and two inputs for this ESP32 variant (ECG_PIN_OUTPUT, ECG_PIN_LO_PLUS, ECG_PIN_LO_MINUS)"
#endif
#endif
#ifndef ECG_PIN_OUTPUT
#define ECG_PIN_OUTPUT A0 // Nano 33 BLE, Uno and the others
#endif
#ifndef ECG_PIN_LO_PLUS
#define ECG_PIN_LO_PLUS 10
#endif
#ifndef ECG_PIN_LO_MINUS
#define ECG_PIN_LO_MINUS 11
#endif

#ifndef ECG_BAUD
#define ECG_BAUD 115200
#endif

// The serial port to the host: the native USB port where a board has one besides its UART. The
// Arduino Zero's `Serial` is the EDBG UART of its programming port; SerialUSB is its native port
// (MKR boards: `Serial` is already native USB).
#ifndef ECG_SERIAL
#if defined(ARDUINO_SAMD_ZERO)
#define ECG_SERIAL SerialUSB
#else
#define ECG_SERIAL Serial
#endif
#endif

// Samples between two classified windows: 0 takes the bundle's ECG_DEVICE_HOP_SAMPLES (2.5 s);
// another value is handed to the core as ecg_app_platform.hop.
#ifndef ECG_HOP_SAMPLES
#define ECG_HOP_SAMPLES 0
#endif

// Inference backend: "native" (the int8 kernels in src/nn/, any board with the RAM) by default.
// TensorFlow Lite Micro instead: install a TFLM Arduino library, set ECG_BACKEND_TFLM to 1 in
// src/ecg_board.h (it must reach the core's files too, so it is set there, or with
// -DECG_BACKEND_TFLM=1 in PlatformIO) and, if yours is not the default below, name its main header.
#ifndef ECG_TFLM_LIBRARY_HEADER
#if defined(ARDUINO_ARCH_ESP32)
#define ECG_TFLM_LIBRARY_HEADER <TensorFlowLite_ESP32.h>
#else
#define ECG_TFLM_LIBRARY_HEADER <Chirale_TensorFlowLite.h>
#endif
#endif

// ESP32 only: run the app loop (serial, filter, model) in a FreeRTOS task pinned to this core
// (0 or 1) instead of in loop(); -1 keeps loop(). The sampling task always runs on
// ECG_ESP32_SAMPLER_CORE at the highest priority.
#ifndef ECG_ESP32_APP_CORE
#define ECG_ESP32_APP_CORE -1
#endif
#ifndef ECG_ESP32_SAMPLER_CORE
#define ECG_ESP32_SAMPLER_CORE 1
#endif
// ===============================================================================================

#include "src/ecg_generated.h" // first: stops the build with the ecg-export command when missing
#include "src/ecg_board.h"
#include "src/ecg_app.h"
#include "src/ecg_protocol.h"
#if ECG_SIGNAL_SOURCE == ECG_SOURCE_SIGNAL_MODEL
#include "src/ecg_signal_model.h"
#endif
#if defined(ECG_BACKEND_TFLM) && ECG_BACKEND_TFLM && !ECG_APP_NO_MODEL
#include ECG_TFLM_LIBRARY_HEADER // makes the IDE put the TFLM library on the include path
#endif
#if defined(ARDUINO_ARCH_MBED)
#include <mbed.h>
#elif defined(ARDUINO_ARCH_RP2040)
#include <hardware/adc.h>
#include <pico/time.h>
#endif

#if ECG_SIGNAL_SOURCE != ECG_SOURCE_AD8232 && ECG_SIGNAL_SOURCE != ECG_SOURCE_SIGNAL_MODEL
#error "ecg-edge: ECG_SIGNAL_SOURCE must be ECG_SOURCE_AD8232 or ECG_SOURCE_SIGNAL_MODEL"
#endif

// ADC resolution per board: 12 bits where the core can set it, the AVR's 10 bits otherwise.
#if defined(ARDUINO_ARCH_AVR) || defined(ARDUINO_ARCH_MEGAAVR)
#define ECG_ADC_BITS 10
#else
#define ECG_ADC_BITS 12
#define ECG_SET_ADC_RESOLUTION 1
#endif

#define ECG_SAMPLE_PERIOD_US (1000000UL / ECG_SAMPLE_RATE_HZ)

static ecg_app *ecg;

// ---- platform ---------------------------------------------------------------------------------
static void ecg_serial_write(void *ctx, const uint8_t *data, size_t n) {
  (void)ctx;
  ECG_SERIAL.write(data, n);
}

static uint32_t ecg_clock_us(void *ctx) {
  (void)ctx;
  return (uint32_t)micros();
}

static uint32_t ecg_clock_ms(void *ctx) {
  (void)ctx;
  return (uint32_t)millis();
}

// ---- one sample: ADC (or signal model) and lead-off pins, into the app's ring -------------------
#if ECG_SIGNAL_SOURCE == ECG_SOURCE_SIGNAL_MODEL
static ecg_signal ecg_model_state;
#endif

#if defined(ARDUINO_ARCH_AVR) && ECG_SIGNAL_SOURCE == ECG_SOURCE_AD8232
// AVR: analogRead() busy-waits about 112 us, which an ISR would spend with interrupts off. The ISR
// instead takes the conversion it started one tick earlier and starts the next one (ADMUX keeps the
// channel that analogRead() set up in setup()): a constant 4 ms delay, no jitter, microseconds in
// the ISR.
static inline uint16_t ecg_read_adc() {
  const uint16_t raw = ADC;
  ADCSRA |= _BV(ADSC);
  return raw;
}
#elif defined(ARDUINO_ARCH_SAMD) && !defined(__SAMD51__) && ECG_SIGNAL_SOURCE == ECG_SOURCE_AD8232
// SAMD21: the core's analogRead() does two blocking conversions with the DIV512 prescaler and the
// longest sampling time (about 0.8 ms), which in the TC3 interrupt (priority 0, as USB) would hold
// USB off for a fifth of every tick. As on AVR, the interrupt takes the conversion it started one
// tick earlier (4 ms is far longer than one conversion) and starts the next: a constant 4 ms delay,
// a few register accesses in the interrupt. analogRead() in setup() left the ADC enabled on the
// channel of ECG_PIN_OUTPUT with the resolution of analogReadResolution() (12 bits); the first read
// before any conversion returns whatever RESULT holds (one sample at startup). Unbuilt here (no SAMD
// core on this machine): written from the SAMD21 datasheet's ADC registers (ADC->SWTRIG.START,
// INTFLAG.RESRDY, RESULT, STATUS.SYNCBUSY).
static void ecg_adc_sync() {
  while (ADC->STATUS.bit.SYNCBUSY) {
  }
}

static void ecg_adc_start() {
  ADC->CTRLA.bit.ENABLE = 1; // analogRead() disables the ADC after its read
  ecg_adc_sync();
  ADC->INTFLAG.reg = ADC_INTFLAG_RESRDY;
  ADC->SWTRIG.bit.START = 1;
  ecg_adc_sync();
}

static inline uint16_t ecg_read_adc() {
  static uint16_t last;
  if (ADC->INTFLAG.bit.RESRDY) { // the conversion started one tick ago is done
    ecg_adc_sync();
    last = (uint16_t)ADC->RESULT.reg; // reading RESULT clears RESRDY
  }
  ADC->SWTRIG.bit.START = 1;
  ecg_adc_sync();
  return last;
}
#elif defined(ARDUINO_ARCH_RP2040) && !defined(ARDUINO_ARCH_MBED) && ECG_SIGNAL_SOURCE == ECG_SOURCE_AD8232
// arduino-pico: analogRead() takes a core mutex, which in an interrupt silently fails to lock when
// the interrupted code holds it (it works only because nothing else here reads the ADC). As on AVR,
// the timer interrupt instead takes the one-shot conversion it started one tick earlier and starts
// the next, on the registers (pico-sdk hardware/adc.h): analogRead() in setup() left the ADC on the
// channel of ECG_PIN_OUTPUT; a conversion takes 2 us, the result is 12 bits. Unbuilt here (no
// arduino-pico core on this machine).
static inline uint16_t ecg_read_adc() {
  const uint16_t raw = (uint16_t)(adc_hw->result & 0xFFFu);
  hw_set_bits(&adc_hw->cs, ADC_CS_START_ONCE_BITS);
  return raw;
}
#else
static inline uint16_t ecg_read_adc() {
  return (uint16_t)analogRead(ECG_PIN_OUTPUT);
}
#endif

#if defined(ARDUINO_ARCH_ESP32) || defined(ARDUINO_ARCH_MBED)
// A sampler task woken by the timer interrupt (ESP32, mbed): `ticks` periods passed since its
// previous sample (ecg_app.h); the ticks - 1 it missed become lost samples, never merged silently.
#if ECG_SIGNAL_SOURCE == ECG_SOURCE_AD8232
static void ecg_sample_ticks(uint32_t ticks) {
  if (ticks == 0) {
    return;
  }
  const int lead_off = digitalRead(ECG_PIN_LO_PLUS) == HIGH || digitalRead(ECG_PIN_LO_MINUS) == HIGH;
  ecg_app_on_ticks(ecg, ticks, ecg_read_adc(), lead_off);
}
#else
static void ecg_sample_ticks(uint32_t ticks) {
  if (ticks == 0) {
    return;
  }
  int lead_off = 0;
  uint16_t raw = 0;
  for (uint32_t i = 0; i < ticks; i++) { // the model's time goes on while the sampler was late
    raw = ecg_signal_next(&ecg_model_state, &lead_off);
  }
  ecg_app_on_ticks(ecg, ticks, raw, lead_off);
}
#endif
#endif

#if !defined(ARDUINO_ARCH_ESP32) && !defined(ARDUINO_ARCH_MBED) // there a sampler task: ecg_sample_ticks
static void ecg_sample_tick() {
#if ECG_SIGNAL_SOURCE == ECG_SOURCE_AD8232
  const int lead_off = digitalRead(ECG_PIN_LO_PLUS) == HIGH || digitalRead(ECG_PIN_LO_MINUS) == HIGH;
  ecg_app_on_sample(ecg, ecg_read_adc(), lead_off);
#else
  int lead_off = 0;
  const uint16_t raw = ecg_signal_next(&ecg_model_state, &lead_off);
  ecg_app_on_sample(ecg, raw, lead_off);
#endif
}
#endif

// ---- the 250 Hz timer, per board ------------------------------------------------------------------
// The interrupt samples itself on AVR, SAMD21 and arduino-pico, with the conversion it started one
// tick earlier on the ADC's registers (ecg_read_adc): never a blocking or locking analogRead() there.
// On the ESP32 and the mbed cores analogRead() takes a lock (an ESP-IDF ADC lock, an mbed mutex),
// which is not allowed in an interrupt: there the timer interrupt counts the tick and wakes a
// sampling task of the highest priority that takes the count and reads the ADC at once
// (microseconds of jitter, no drift; ticks it missed become lost samples, ecg_app_on_ticks).
#if defined(ARDUINO_ARCH_ESP32)
#if defined(CONFIG_FREERTOS_UNICORE) && CONFIG_FREERTOS_UNICORE // single-core chips (ESP32-C3): core 0
#define ECG_ESP32_CORE(c) 0
#else
#define ECG_ESP32_CORE(c) (c)
#endif
static hw_timer_t *ecg_timer;
static TaskHandle_t ecg_sampler;

static void IRAM_ATTR ecg_on_timer() {
  BaseType_t woken = pdFALSE;
  vTaskNotifyGiveFromISR(ecg_sampler, &woken);
  if (woken == pdTRUE) {
    portYIELD_FROM_ISR();
  }
}

static void ecg_sampler_task(void *arg) {
  (void)arg;
  for (;;) {
    // The notification value counts the ticks given since the last take: all of them, when late.
    ecg_sample_ticks((uint32_t)ulTaskNotifyTake(pdTRUE, portMAX_DELAY));
  }
}

static void ecg_timer_start() {
  xTaskCreatePinnedToCore(ecg_sampler_task, "ecg_sampler", 4096, NULL, configMAX_PRIORITIES - 1, &ecg_sampler,
                          ECG_ESP32_CORE(ECG_ESP32_SAMPLER_CORE));
#if defined(ESP_ARDUINO_VERSION_MAJOR) && ESP_ARDUINO_VERSION_MAJOR >= 3
  ecg_timer = timerBegin(1000000); // 3.x: timer frequency in Hz
  timerAttachInterrupt(ecg_timer, &ecg_on_timer);
  timerAlarm(ecg_timer, ECG_SAMPLE_PERIOD_US, true, 0);
#else
  // 1.x/2.x: timer 0, 80 MHz APB / 80 = 1 MHz, count up (timer 0 of 4 on the ESP32, of 2 on the
  // ESP32-C3, whose timers also run from the 80 MHz APB clock).
  ecg_timer = timerBegin(0, 80, true);
  timerAttachInterrupt(ecg_timer, &ecg_on_timer, false); // level: 2.x logs an error for edge, then uses level
  timerAlarmWrite(ecg_timer, ECG_SAMPLE_PERIOD_US, true);
  timerAlarmEnable(ecg_timer);
#endif
}

#elif defined(ARDUINO_ARCH_MBED)
// Nano 33 BLE (nRF52840), Nano RP2040 Connect and other boards of Arduino's mbed cores.
static mbed::Ticker ecg_ticker;
static rtos::Thread ecg_sampler(osPriorityRealtime, 2048, nullptr, "ecg_sampler");

static ecg_app_ticks ecg_ticks; // thread flags set twice before the thread runs count once: a counter

static void ecg_on_tick() {
  ecg_app_ticks_raise(&ecg_ticks);
  ecg_sampler.flags_set(1);
}

static void ecg_sampler_main() {
  for (;;) {
    rtos::ThisThread::flags_wait_any(1);
    ecg_sample_ticks(ecg_app_ticks_take(&ecg_ticks)); // 0 after a flag whose tick was taken already
  }
}

static void ecg_timer_start() {
  ecg_sampler.start(mbed::callback(ecg_sampler_main));
  ecg_ticker.attach(mbed::callback(ecg_on_tick), std::chrono::microseconds(ECG_SAMPLE_PERIOD_US));
}

#elif defined(ARDUINO_ARCH_AVR)
// ATmega328P/2560/32U4: Timer1 in CTC mode, prescaler 64 (16 MHz: 250 kHz, compare at 1000 counts).
#define ECG_T1_COUNTS (F_CPU / 64UL / ECG_SAMPLE_RATE_HZ)
#if ECG_T1_COUNTS < 2 || ECG_T1_COUNTS > 65536UL || ECG_T1_COUNTS * 64UL * ECG_SAMPLE_RATE_HZ != F_CPU
#error "ecg-edge: F_CPU / 64 is not a whole multiple of the sample rate that fits Timer1"
#endif

ISR(TIMER1_COMPA_vect) {
  ecg_sample_tick();
}

static void ecg_timer_start() {
  noInterrupts();
  TCCR1A = 0;
  TCCR1B = 0;
  TCNT1 = 0;
  OCR1A = (uint16_t)(ECG_T1_COUNTS - 1);
  TIFR1 = _BV(OCF1A);
  TIMSK1 = _BV(OCIE1A);
  TCCR1B = _BV(WGM12) | _BV(CS11) | _BV(CS10); // CTC on OCR1A, clk/64
  interrupts();
}

#elif defined(ARDUINO_ARCH_SAMD) && !defined(__SAMD51__)
// SAMD21 (Zero, MKR, Nano 33 IoT): TC3, 16 bits, 48 MHz / 64 = 750 kHz, match frequency mode.
static void ecg_tc3_sync() {
  while (TC3->COUNT16.STATUS.bit.SYNCBUSY) {
  }
}

void TC3_Handler() {
  TC3->COUNT16.INTFLAG.reg = TC_INTFLAG_MC0;
  ecg_sample_tick();
}

static void ecg_timer_start() {
#if ECG_SIGNAL_SOURCE == ECG_SOURCE_AD8232
  ecg_adc_start(); // the first conversion, taken by the first tick
#endif
  GCLK->CLKCTRL.reg = (uint16_t)(GCLK_CLKCTRL_CLKEN | GCLK_CLKCTRL_GEN_GCLK0 | GCLK_CLKCTRL_ID_TCC2_TC3);
  while (GCLK->STATUS.bit.SYNCBUSY) {
  }
  TC3->COUNT16.CTRLA.reg &= ~TC_CTRLA_ENABLE;
  ecg_tc3_sync();
  TC3->COUNT16.CTRLA.reg = TC_CTRLA_MODE_COUNT16 | TC_CTRLA_WAVEGEN_MFRQ | TC_CTRLA_PRESCALER_DIV64;
  ecg_tc3_sync();
  TC3->COUNT16.CC[0].reg = (uint16_t)(F_CPU / 64UL / ECG_SAMPLE_RATE_HZ - 1);
  ecg_tc3_sync();
  TC3->COUNT16.INTENSET.reg = TC_INTENSET_MC0;
  NVIC_SetPriority(TC3_IRQn, 0);
  NVIC_EnableIRQ(TC3_IRQn);
  TC3->COUNT16.CTRLA.reg |= TC_CTRLA_ENABLE;
  ecg_tc3_sync();
}

#elif defined(ARDUINO_ARCH_RP2040)
// RP2040/RP2350 with the arduino-pico core: a pico-sdk repeating timer (negative delay: start to
// start, no drift); its callback runs in the timer interrupt and samples there, with the ADC's
// registers (ecg_read_adc above), never analogRead().
static repeating_timer_t ecg_timer;

static bool ecg_on_timer(repeating_timer_t *t) {
  (void)t;
  ecg_sample_tick();
  return true;
}

static void ecg_timer_start() {
  add_repeating_timer_us(-(int64_t)ECG_SAMPLE_PERIOD_US, ecg_on_timer, NULL, &ecg_timer);
}

#else
#error "ecg-edge: no 250 Hz sample timer for this board. Supported: ESP32, Arduino mbed (Nano 33 BLE, Nano RP2040 Connect), AVR, SAMD21, RP2040 (arduino-pico). Add an ecg_timer_start() for yours in ecg_edge.ino."
#endif

// ---- main loop work ----------------------------------------------------------------------------
static void ecg_service() {
  uint8_t buf[32];
  size_t n = 0;
  while (ECG_SERIAL.available() > 0) {
    const int c = ECG_SERIAL.read();
    if (c < 0) {
      break;
    }
    buf[n++] = (uint8_t)c;
    if (n == sizeof buf) {
      ecg_app_on_rx(ecg, buf, n);
      n = 0;
    }
  }
  if (n > 0) {
    ecg_app_on_rx(ecg, buf, n);
  }
  ecg_app_poll(ecg);
}

#if defined(ARDUINO_ARCH_ESP32) && ECG_ESP32_APP_CORE >= 0
static void ecg_app_task(void *arg) {
  (void)arg;
  for (;;) {
    ecg_service();
    vTaskDelay(1); // lets the idle task of this core feed the task watchdog
  }
}
#endif

void setup() {
#if defined(ARDUINO_ARCH_ESP32)
  ECG_SERIAL.setRxBufferSize(2048); // REPLAY frames are up to 522 bytes; before begin()
#endif
  ECG_SERIAL.begin(ECG_BAUD);
  const unsigned long t0 = millis();
  while (!ECG_SERIAL && millis() - t0 < 2000UL) {
    // native USB boards: give the host 2 s to open the port (never blocks without one)
  }
#if ECG_SIGNAL_SOURCE == ECG_SOURCE_AD8232
  pinMode(ECG_PIN_LO_PLUS, INPUT);
  pinMode(ECG_PIN_LO_MINUS, INPUT);
#if defined(ECG_SET_ADC_RESOLUTION)
  analogReadResolution(ECG_ADC_BITS);
#endif
  (void)analogRead(ECG_PIN_OUTPUT); // selects the channel (and, on AVR, leaves a conversion ready)
#else
  ecg_signal_config signal_cfg;
  ecg_signal_default_config(&signal_cfg, ECG_SAMPLE_RATE_HZ); // 72 bpm, AD8232 gain and offset
  signal_cfg.adc_bits = ECG_ADC_BITS;
  ecg_signal_init(&ecg_model_state, &signal_cfg);
#endif

  static ecg_app_platform platform;
  platform.write = ecg_serial_write;
  platform.clock = ecg_clock_us;
  platform.millis = ecg_clock_ms;
  platform.ctx = NULL;
  platform.time_unit = ECG_PROTO_TIME_MICROSECONDS;
  platform.adc_bits = ECG_ADC_BITS;
#if ECG_HOP_SAMPLES > 0
  platform.hop = ECG_HOP_SAMPLES;
#endif
  ecg = ecg_app_instance();
  ecg_app_init(ecg, &platform); // sends INFO; without a model it still streams SAMPLES
  ecg_timer_start();

#if defined(ARDUINO_ARCH_ESP32) && ECG_ESP32_APP_CORE >= 0
  xTaskCreatePinnedToCore(ecg_app_task, "ecg_app", 16384, NULL, 1, NULL, ECG_ESP32_CORE(ECG_ESP32_APP_CORE));
#endif
}

void loop() {
#if defined(ARDUINO_ARCH_ESP32) && ECG_ESP32_APP_CORE >= 0
  vTaskDelete(NULL); // the app task does the work
#else
  ecg_service();
#endif
}
