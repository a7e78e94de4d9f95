"""The firmware's static RAM for a bundle on a 32-bit board, written into `ecg_config.h`.

`src/ecg_board.h` compares `ECG_MODEL_RAM_BYTES` with the board's RAM before the linker does, so
that a board too small for the model stops with the numbers and the ways out instead of a bare
`region 'RAM' overflowed`. The C preprocessor cannot take `sizeof` of a struct, so the figure is
computed here, from the same values that size the firmware's arrays (the native plan's arena, the
window, the filter sections, the interpreter's op and tensor tables) and a few layout constants.
The compiler keeps those honest: `ecg_app.c` and `ecg_infer_native.c` assert (a negative array
size, C99) on every 32-bit build that `sizeof(struct ecg_app)` and `sizeof(nn_model)` do not
exceed the generated figures; the Cortex-M4 build of the tests runs those asserts.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.signal.beats import BEAT_LOG, BUFFER as BEAT_BUFFER, DEFAULT_BEATS, BeatConfig

# ecg_app.h's default ECG_APP_RING_SAMPLES (2-byte entries); the app state below assumes it, and the
# assert in ecg_app.c runs only with that ring.
APP_RING_SAMPLES = 256
# struct ecg_app on a 32-bit target (ARM EABI, Xtensa, RISC-V) besides the arrays that scale with the
# bundle: counters, the protocol reader (a 522-byte frame), the 160-byte transmit buffer, the SAMPLES
# batch, the quality sums' snapshots and the filter's bookkeeping. Measured with arm-none-eabi-gcc.
APP_STATE_FIXED_BYTES = 1236
# ecg_core's beat log (BEAT_LOG u32 and two u32 positions), its beat callback and context (two pointers).
CORE_BEAT_EXTRA_BYTES = 4 * BEAT_LOG + 8 + 8
# nn_model (nn/nn_model.h) on a 32-bit target: header, 12 bytes per tensor slot, 116 per op slot.
NN_MODEL_HEADER_BYTES = 44
NN_TENSOR_BYTES = 12
NN_OP_BYTES = 116
# nn_model.h's default table sizes: the Arduino IDE build uses them (the test Makefile sizes the
# tables to the model instead), so the budget counts the larger of the default and the model's need.
NN_DEFAULT_MAX_OPS = 48
NN_DEFAULT_MAX_TENSORS = 96


@dataclass(frozen=True)
class FirmwareRam:
    """Static RAM of the firmware with a model, in bytes, on a 32-bit board (native backend)."""

    arena: int  # the native plan's tensor arena (ECG_NATIVE_ARENA_BYTES)
    app_state: int  # struct ecg_app: sample ring, filtered window, quality sums, beat detector, protocol buffers
    beats: int  # the part of app_state a build without the beat detector (ECG_BEATS 0) does not have
    model_tables: int  # nn_model: the interpreter's op and tensor tables
    tflm_arena: int  # the tflm backend's arena instead of the native one (ECG_TFLM_ARENA_BYTES)

    @property
    def total(self) -> int:
        return self.arena + self.app_state + self.model_tables

    @property
    def total_tflm(self) -> int:
        """With the tflm backend: its arena replaces the native one (TFLM's own objects come on top)."""
        return self.tflm_arena + self.app_state


def _round4(n: int) -> int:
    return (n + 3) // 4 * 4


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def beat_state_bytes(cfg: BeatConfig = DEFAULT_BEATS) -> int:
    """sizeof(ecg_beats) (firmware ecg_beats.h) on a 32-bit target with 8-byte aligned int64: its members
    by size, no padding inside, the whole a multiple of 8."""
    b, deque = BEAT_BUFFER, 2 * cfg.reach + 2
    wide = 8 * 2  # thr, search_at
    candidate = 4 * 4  # ecg_beat_candidate: m, p, where, slope
    # the deque's integrals, m_now, top, the QRS and noise buffers; the learning candidates and the kept one;
    # e and |h| rings (reach + mwi_len + 1 samples), filter rings, their sums, h[n-1..n-4], rr, 5 counters, 5 ring positions
    words = 4 * (deque + 2 + 2 * b) + candidate * (cfg.learn_candidates + 1)
    words += 4 * (2 * (cfg.reach + cfg.mwi_len + 1) + 2 * cfg.lp_len + cfg.hp_len + b + 17)
    halves = 2 * (deque + 1)  # the deque's samples, the learning candidates' count
    return _round8(wide + words + halves + 6)  # 6 one-byte indices and flags


def core_beats_bytes(beats: BeatConfig = DEFAULT_BEATS) -> int:
    """What the beat detector adds to ecg_core (ECG_BEATS 1): its state, the beat log, the callback."""
    return beat_state_bytes(beats) + CORE_BEAT_EXTRA_BYTES


def app_state_bytes(window: int, filter_sections: int, ring_samples: int = APP_RING_SAMPLES, beats: BeatConfig = DEFAULT_BEATS) -> int:
    """sizeof(struct ecg_app) with a model on a 32-bit target: float32 window ring, its rail bits
    (one per sample), two double states per biquad section, 2-byte ring entries, the beat detector
    with its log and callback, the fixed rest."""
    return (4 * window + _round4((window + 7) // 8) + 16 * filter_sections + 2 * ring_samples + core_beats_bytes(beats)
            + APP_STATE_FIXED_BYTES)  # fmt: skip


def model_table_bytes(ops: int, tensors: int) -> int:
    """sizeof(nn_model) on a 32-bit target with tables for this many ops and tensors (at least nn_model.h's defaults)."""
    return NN_MODEL_HEADER_BYTES + NN_TENSOR_BYTES * max(tensors, NN_DEFAULT_MAX_TENSORS) + NN_OP_BYTES * max(ops, NN_DEFAULT_MAX_OPS)


def firmware_ram(arena: int, window: int, filter_sections: int, ops: int, tensors: int, tflm_arena: int,
                 beats: BeatConfig = DEFAULT_BEATS) -> FirmwareRam:  # fmt: skip
    """The firmware's RAM budget for a bundle: arena, app state and model tables as the firmware sizes them."""
    return FirmwareRam(
        arena=_round4(arena),  # the arena is an int32-aligned union (ecg_infer_native.c)
        app_state=app_state_bytes(window, filter_sections, beats=beats),
        beats=core_beats_bytes(beats),
        model_tables=model_table_bytes(ops, tensors),
        tflm_arena=tflm_arena,
    )


def ram_block(ram: FirmwareRam) -> str:
    """The `ecg_config.h` lines: plain numbers, so that ecg_board.h can print them in its message."""
    return (
        "/* The firmware's static RAM with this model on a 32-bit board (export/ram.py): the native arena,\n"
        " * struct ecg_app (sample ring, filtered window, beat detector, protocol buffers) and the interpreter's tables\n"
        " * (nn_model). ecg_board.h compares the sum with the board's RAM; ecg_app.c and\n"
        " * ecg_infer_native.c assert on 32-bit builds that the structs are not larger than said here. */\n"
        f"#define ECG_RAM_ARENA_BYTES {ram.arena}\n"
        f"#define ECG_RAM_APP_STATE_BYTES {ram.app_state}\n"
        f"#define ECG_RAM_MODEL_TABLE_BYTES {ram.model_tables}\n"
        f"#define ECG_RAM_RING_SAMPLES {APP_RING_SAMPLES}\n"
        "/* The beat detector's part of the app state: a build with ECG_BEATS 0 needs this much less. */\n"
        f"#define ECG_RAM_BEATS_BYTES {ram.beats}\n"
        f"#define ECG_MODEL_RAM_BYTES {ram.total}\n"
        "/* The same with the tflm backend: its arena (ECG_TFLM_ARENA_BYTES) and the app state, no nn_model. */\n"
        f"#define ECG_MODEL_RAM_BYTES_TFLM {ram.total_tflm}\n"
    )


RAM_ERROR_HEADER = "ecg_ram_error.h"


def ram_error_header(ram: FirmwareRam, banner: str) -> str:
    """`ecg_ram_error.h`: included by ecg_board.h only when the model does not fit the board; its #error
    states the bundle's figures (an #error's text is never macro-expanded, so they are written out)."""
    return (
        banner
        + "/* Included by ecg_board.h only when this bundle's model does not fit the board's RAM; no include guard. */\n"
        + f'#error "ecg-edge: this bundle\'s model needs {ram.total} B of static RAM: arena {ram.arena} + app state {ram.app_state}'
        + f' + model tables {ram.model_tables} (with the tflm backend: {ram.total_tflm}; {ram.beats} B less each without'
        + ' the beat detector, ECG_BEATS 0); the next line gives the board\'s RAM"\n'
    )
