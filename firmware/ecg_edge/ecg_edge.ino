// ecg-edge sketch: AD8232 -> 250 Hz samples -> device filter -> window -> int8 model -> serial.
// Research tool, not a medical device: never use its output for clinical decisions.
//
// Needs the generated sources of a bundle in src/generated/ (not committed):
//   ecg-export firmware --bundle <your bundle> --out firmware/ecg_edge/src/generated
// This shell samples by polling micros(); the timer-interrupt sampler, the binary serial
// protocol and the per-board settings come with the live-path issue.

// ---- configuration --------------------------------------------------------------------------
static const int ECG_PIN_OUTPUT = A0;   // AD8232 OUTPUT
static const int ECG_PIN_LO_PLUS = 10;  // AD8232 LO+
static const int ECG_PIN_LO_MINUS = 11; // AD8232 LO-
static const long ECG_BAUD = 115200;
static const int ECG_ADC_BITS = 12;     // analogReadResolution where the core supports it
// ---------------------------------------------------------------------------------------------

extern "C" {
#include "src/ecg_generated.h"
#include "src/ecg_core.h"
#include "src/ecg_infer.h"
}

static ecg_core core;
static unsigned long next_us;
static const unsigned long PERIOD_US = 1000000UL / ECG_SAMPLE_RATE_HZ;

void setup() {
  Serial.begin(ECG_BAUD);
  pinMode(ECG_PIN_LO_PLUS, INPUT);
  pinMode(ECG_PIN_LO_MINUS, INPUT);
#if defined(ARDUINO_ARCH_ESP32) || defined(ARDUINO_ARCH_MBED) || defined(ARDUINO_ARCH_SAMD)
  analogReadResolution(ECG_ADC_BITS);
#endif
  if (ecg_core_init(&core, (uint16_t)((1u << ECG_ADC_BITS) - 1u), ECG_DEVICE_HOP_SAMPLES) != 0) {
    Serial.print("error: model did not load: ");
    Serial.println(ecg_infer_error());
  }
  next_us = micros();
}

void loop() {
  if ((long)(micros() - next_us) < 0) {
    return;
  }
  next_us += PERIOD_US;
  const int lead_off = digitalRead(ECG_PIN_LO_PLUS) == HIGH || digitalRead(ECG_PIN_LO_MINUS) == HIGH;
  ecg_result r;
  if (ecg_core_push(&core, (uint16_t)analogRead(ECG_PIN_OUTPUT), lead_off, &r) == 1) {
    static const char *const labels[] = ECG_LABELS;
    Serial.print("window ");
    Serial.print(r.window_index);
    Serial.print(r.status == ECG_STATUS_OK ? " class " : " not classified: status ");
    if (r.status == ECG_STATUS_OK) {
      Serial.println(labels[r.label]);
    } else {
      Serial.println(r.status);
    }
  }
}
