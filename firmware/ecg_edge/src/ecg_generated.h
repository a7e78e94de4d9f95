/* The bundle's generated headers, found on the include path (test builds: -I GEN) or in
 * src/generated/ (the sketch). Missing ones stop the build with the command that makes them. */
#ifndef ECG_GENERATED_H
#define ECG_GENERATED_H

#if defined(__has_include)
#if __has_include("ecg_config.h")
#include "ecg_config.h"
#include "ecg_native_model.h"
#elif __has_include("generated/ecg_config.h")
#include "generated/ecg_config.h"
#include "generated/ecg_native_model.h"
#else
#error "ecg-edge: the generated sources are missing. Run: ecg-export firmware --bundle <your bundle> --out firmware/ecg_edge/src/generated"
#endif
#else
#include "ecg_config.h"
#include "ecg_native_model.h"
#endif

#endif /* ECG_GENERATED_H */
