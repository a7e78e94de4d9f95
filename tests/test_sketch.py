"""The Arduino sketch (firmware/ecg_edge/ecg_edge.ino) built for the Arduino Uno with the real Arduino
AVR core (Debian's arduino-builder, offline), and the Uno image run under simavr.

- The build must fit the ATmega328P (flash <= 32256 bytes, RAM <= 2048 bytes with room for the
  stack) and the sketch must compile without warnings; without the generated sources the build
  must stop with the message that names `ecg-export firmware`.
- simavr's own console mangles binary UART output, so a small harness over libsimavr
  (SIM_HARNESS below) records UART0's bytes exactly, drives ADC0 and the LO+/LO- pins, sends host
  frames and tracks the lowest stack pointer. Its output is read with host.protocol.Reader.

Sources are generated from the session's demo bundle into a copy of the sketch under tmp (never
into the repository's src/generated). The Debian packages are installed with apt-get when missing
and running as root; otherwise the tests are skipped, except under CI=true where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from export.firmware import generate_firmware
from host.protocol import Ack, Command, CommandCode, Encoder, Info, Reader, Samples, decode_message

REPO = Path(__file__).resolve().parents[1]
SKETCH = REPO / "firmware" / "ecg_edge"
APT_PACKAGES = ["arduino-builder", "arduino-core-avr", "arduino-ctags", "simavr", "libsimavr-dev", "gcc"]
FLASH_MAX = 32256  # ATmega328P flash less the Optiboot boot loader
RAM_MAX = 2048
STACK_MARGIN = 64  # bytes that must stay free below the deepest stack seen under simavr
F_CPU = 16_000_000
RAMEND = 0x8FF
ARDUINO_BUILDER_PREFS = [
    "-prefs=tools.ctags.path=/usr/bin",
    "-prefs=tools.ctags.cmd.path=/usr/bin/arduino-ctags",
    '-prefs=tools.ctags.pattern="{cmd.path}" -u --language-force=c++ -f - --c++-kinds=svpf --fields=KSTtzns --line-directives "{source_file}"',
]


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _missing_packages() -> list[str]:
    if shutil.which("dpkg") is None:
        return list(APT_PACKAGES)
    return [p for p in APT_PACKAGES if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]


@pytest.fixture(scope="session")
def avr_toolchain() -> None:
    """arduino-builder, the Arduino AVR core, arduino-ctags and libsimavr: installed when root, else skip (fail under CI)."""
    missing = _missing_packages()
    if missing and shutil.which("apt-get") and getattr(os, "geteuid", lambda: -1)() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        missing = _missing_packages()
    if missing:
        msg = f"Debian packages missing: {' '.join(missing)} (apt-get install {' '.join(missing)})"
        if _ci():
            pytest.fail(msg)
        pytest.skip(msg)


def _sketch_copy(dest: Path) -> Path:
    """A copy of the sketch folder without any generated sources; returns the .ino."""
    folder = dest / "ecg_edge"
    shutil.copytree(SKETCH, folder, ignore=shutil.ignore_patterns("generated", "build", ".pio"))
    return folder / "ecg_edge.ino"


def arduino_builder(ino: Path, build: Path, sketch_flags: str = "") -> subprocess.CompletedProcess[str]:
    """The offline Uno build of TOOLCHAIN.md (the ctags preferences replace a tool folder Debian lacks).
    `sketch_flags` go to the C++ files only, i.e. the .ino (the configuration block's -D settings)."""
    build.mkdir(parents=True, exist_ok=True)
    cmd = ["arduino-builder", "-hardware", "/usr/share/arduino/hardware", "-tools", "/usr/bin", "-fqbn", "arduino:avr:uno",
           "-build-path", str(build), f"-prefs=compiler.cpp.extra_flags=-DDECIMAL_DIG=17 {sketch_flags}".strip(),
           *ARDUINO_BUILDER_PREFS, "-warnings=all", str(ino)]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _uno_build(bundle: Path, root: Path, sketch_flags: str = "", app_config: str = "") -> tuple[Path, str]:
    """`app_config`: the text of src/ecg_app_config.h (the Arduino IDE user's settings for the core)."""
    ino = _sketch_copy(root)
    generate_firmware(bundle, ino.parent / "src" / "generated")
    if app_config:
        (ino.parent / "src" / "ecg_app_config.h").write_text(app_config)
    proc = arduino_builder(ino, root / "build", sketch_flags)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    return root / "build" / "ecg_edge.ino.elf", out


@pytest.fixture(scope="module")
def uno_build(avr_toolchain, demo_bundle, tmp_path_factory) -> tuple[Path, str]:
    """(ELF, builder output) of the Uno build of a sketch copy with the demo bundle's generated sources."""
    return _uno_build(demo_bundle[1], tmp_path_factory.mktemp("uno"))


def test_uno_build_fits(uno_build):
    elf, out = uno_build
    flash = re.search(r"Sketch uses (\d+) bytes", out)
    ram = re.search(r"Global variables use (\d+) bytes", out)
    assert flash and ram, out[-3000:]
    assert int(flash.group(1)) <= FLASH_MAX, out[-3000:]
    print(f"Uno: {flash.group(0)}, {ram.group(0)}")
    # Static RAM must leave the stack its room; test_uno_under_simavr measures the stack itself.
    assert int(ram.group(1)) <= RAM_MAX - 256, out[-3000:]
    assert elf.is_file()


def test_sketch_compiles_without_warnings(uno_build):
    _, out = uno_build
    own = [line for line in out.splitlines() if "warning" in line and "ecg_edge.ino" in line]
    assert not own, "\n".join(own)


def test_sketch_without_generated_sources_names_the_export_command(avr_toolchain, tmp_path):
    ino = _sketch_copy(tmp_path)
    assert not (ino.parent / "src" / "generated").exists()
    proc = arduino_builder(ino, tmp_path / "build")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "ecg-export firmware --bundle" in out, out[-3000:]


def test_model_forced_on_the_uno_stops_with_the_ram_numbers(avr_toolchain, demo_bundle, tmp_path):
    """The fit check on the AVR toolchain: with the model forced on (ECG_APP_NO_MODEL=0) the Uno build
    stops before the linker with the bundle's RAM budget, the board's 2 KB and both ways out."""
    ino = _sketch_copy(tmp_path)
    info = generate_firmware(demo_bundle[1], ino.parent / "src" / "generated")
    proc = arduino_builder(ino, tmp_path / "build", "-DECG_APP_NO_MODEL=0")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"model needs {info['ram']['model_ram_bytes']} B of static RAM: arena {info['ram']['arena']}" in out, out[-4000:]
    assert "8-bit AVR with 2048 B of RAM (Uno, Nano) cannot hold the model" in out and "samples-only build" in out, out[-4000:]


# ---- simavr ------------------------------------------------------------------------------------

SIM_HARNESS = r"""
/* Runs an ATmega328P ELF under libsimavr; writes UART0's output bytes exactly to OUT.
 * usage: uno_run ELF OUT SECONDS ADC0_MV [T:what=value ...]
 *   T:adc=MV (ADC0), T:lo+=0|1 (PB2, pin 10), T:lo-=0|1 (PB3, pin 11), T:rx=HEX (bytes into UART0);
 *   T in seconds of simulated time, events in time order. Prints state, cycles and the lowest SP. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_avr.h"
#include "sim_elf.h"
#include "avr_adc.h"
#include "avr_ioport.h"
#include "avr_uart.h"

#define F_CPU 16000000UL
static FILE *out;
static uint8_t rx[4096];
static size_t rx_len, rx_pos;
static avr_irq_t *uart_in;

static void on_tx(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq; (void)param;
    fputc((int)(value & 0xff), out);
}

static avr_cycle_count_t feed_rx(avr_t *avr, avr_cycle_count_t when, void *param)
{
    (void)avr; (void)param;
    if (rx_pos < rx_len) {
        avr_raise_irq(uart_in, rx[rx_pos++]);
        return when + F_CPU * 10 / 115200; /* one byte per 10 bit times */
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) return 2;
    elf_firmware_t fw;
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(argv[1], &fw) != 0) return 2;
    avr_t *avr = avr_make_mcu_by_name("atmega328p");
    if (!avr) return 2;
    avr_init(avr);
    avr_load_firmware(avr, &fw);
    avr->frequency = F_CPU;
    avr->vcc = avr->avcc = avr->aref = 5000;
    avr->log = LOG_ERROR;
    out = fopen(argv[2], "wb");
    if (!out) return 2;
    uint32_t flags = 0;
    avr_ioctl(avr, AVR_IOCTL_UART_GET_FLAGS('0'), &flags);
    flags &= ~(uint32_t)(AVR_UART_FLAG_STDIO | AVR_UART_FLAG_POLL_SLEEP);
    avr_ioctl(avr, AVR_IOCTL_UART_SET_FLAGS('0'), &flags);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_OUTPUT), on_tx, NULL);
    uart_in = avr_io_getirq(avr, AVR_IOCTL_UART_GETIRQ('0'), UART_IRQ_INPUT);
    avr_irq_t *adc0 = avr_io_getirq(avr, AVR_IOCTL_ADC_GETIRQ, ADC_IRQ_ADC0);
    avr_irq_t *lo_plus = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('B'), 2);
    avr_irq_t *lo_minus = avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('B'), 3);
    avr_raise_irq(adc0, (uint32_t)atoi(argv[4]));
    avr_raise_irq(lo_plus, 0);
    avr_raise_irq(lo_minus, 0);

    const avr_cycle_count_t end = (avr_cycle_count_t)(atof(argv[3]) * F_CPU);
    int next = 5, state = cpu_Running;
    unsigned min_sp = 0xffff;
    while (state != cpu_Done && state != cpu_Crashed && avr->cycle < end) {
        while (next < argc) {
            double t;
            char what[16], value[4096];
            if (sscanf(argv[next], "%lf:%15[^=]=%4095s", &t, what, value) != 3) return 2;
            if (avr->cycle < (avr_cycle_count_t)(t * F_CPU)) break;
            if (!strcmp(what, "adc")) avr_raise_irq(adc0, (uint32_t)atoi(value));
            else if (!strcmp(what, "lo+")) avr_raise_irq(lo_plus, (uint32_t)atoi(value));
            else if (!strcmp(what, "lo-")) avr_raise_irq(lo_minus, (uint32_t)atoi(value));
            else if (!strcmp(what, "rx")) {
                rx_len = rx_pos = 0;
                for (size_t i = 0; value[2 * i] && value[2 * i + 1] && rx_len < sizeof rx; i++) {
                    unsigned b;
                    if (sscanf(value + 2 * i, "%2x", &b) != 1) return 2;
                    rx[rx_len++] = (uint8_t)b;
                }
                avr_cycle_timer_register(avr, 1, feed_rx, NULL);
            } else return 2;
            next++;
        }
        state = avr_run(avr);
        const unsigned sp = avr->data[R_SPL] | (unsigned)avr->data[R_SPH] << 8;
        if (sp < min_sp) min_sp = sp;
    }
    fclose(out);
    printf("state=%d cycles=%llu min_sp=%u\n", state, (unsigned long long)avr->cycle, min_sp);
    return state == cpu_Crashed ? 1 : 0;
}
"""


@pytest.fixture(scope="module")
def uno_sim(avr_toolchain, tmp_path_factory) -> Path:
    """The libsimavr harness, compiled."""
    root = tmp_path_factory.mktemp("simavr")
    (root / "uno_run.c").write_text(SIM_HARNESS)
    exe = root / "uno_run"
    proc = subprocess.run(["gcc", "-O2", "-Wall", "-I/usr/include/simavr", str(root / "uno_run.c"), "-o", str(exe), "-lsimavr"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return exe


def _simulate(sim: Path, elf: Path, work: Path, seconds: float, adc_mv: int, *events: str) -> tuple[bytes, int]:
    """UART0 bytes and the lowest stack pointer of a run."""
    uart = work / "uart.bin"
    proc = subprocess.run([str(sim), str(elf), str(uart), str(seconds), str(adc_mv), *events], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"state=\d+ cycles=(\d+) min_sp=(\d+)", proc.stdout)
    assert m and int(m.group(1)) >= seconds * F_CPU, proc.stdout
    return uart.read_bytes(), int(m.group(2))


def _bss_end(elf: Path) -> int:
    nm = subprocess.run(["avr-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"^([0-9a-f]+) [A-Za-z] (?:__bss_end|_end)$", nm, re.M)
    assert m, nm[-2000:]
    return int(m.group(1), 16) & 0xFFFF


def test_uno_under_simavr(uno_build, uno_sim, demo_bundle, tmp_path):
    """INFO first (no model: capabilities 0, backend none), then SAMPLES with a continuous counter that
    follow ADC0 and the lead-off pins; a GET_INFO command is answered with ACK and INFO; the stack
    never reaches the static data."""
    elf, _ = uno_build
    get_info = Encoder(seq=7).encode(Command(CommandCode.GET_INFO))
    data, min_sp = _simulate(uno_sim, elf, tmp_path, 1.2, 2500,
                             "0.3:rx=" + get_info.hex(), "0.5:lo+=1", "0.7:lo+=0", "0.9:adc=1000")  # fmt: skip
    reader = Reader()
    messages = [decode_message(f) for f in reader.feed(data)]
    assert reader.stats.dropped_bytes == 0 and reader.stats.crc_errors == 0 and reader.stats.header_errors == 0
    assert messages and isinstance(messages[0], Info), messages[:2]

    info = messages[0]
    manifest = json.loads((demo_bundle[1] / "manifest.json").read_text())
    assert info.firmware.startswith("ecg-edge ")
    assert info.backend == "none" and int(info.capabilities) == 0
    assert info.model_sha256 == bytes(32)
    assert info.rate_hz == 250 and info.adc_bits == 10
    assert info.labels == tuple(manifest["labels"])

    samples = [m for m in messages if isinstance(m, Samples)]
    firsts = [s.first_sample for s in samples]
    assert firsts[0] == 0
    assert all(b == a + len(s.values) for a, b, s in zip(firsts, firsts[1:], samples)), firsts  # no gap
    values = [v for s in samples for v in s.values]
    lead_off = [f for s in samples for f in s.lead_off]
    assert len(values) >= 250  # 1.2 s at 250 Hz, less what is still in the ring or in a batch
    # ADC0 at 2500 mV then 1000 mV of AVcc 5000 mV: 511 then 204 counts, one step.
    assert values[0] == 511 and values[-1] == 204
    step = values.index(204)
    assert set(values[:step]) == {511} and set(values[step:]) == {204}
    assert abs(step - 0.9 * 250) <= 10
    # LO+ high from 0.5 s to 0.7 s: one run of 50 flagged samples.
    flagged = [i for i, f in enumerate(lead_off) if f]
    assert flagged and flagged == list(range(flagged[0], flagged[0] + len(flagged)))
    assert abs(len(flagged) - 50) <= 1 and abs(flagged[0] - 0.5 * 250) <= 10

    # The command is answered in order: ACK with its seq and type, then INFO again.
    acks = [i for i, m in enumerate(messages) if isinstance(m, Ack)]
    assert len(acks) == 1, messages
    ack = messages[acks[0]]
    assert ack.seq == 7 and int(ack.type) == 0x81
    assert isinstance(messages[acks[0] + 1], Info) and messages[acks[0] + 1] == info

    free = min_sp - _bss_end(elf)
    assert free >= STACK_MARGIN, f"stack came within {free} bytes of the static data (deepest SP {min_sp:#x})"
    assert RAMEND - min_sp < RAM_MAX


def test_uno_signal_model_source_under_simavr(avr_toolchain, uno_sim, demo_bundle, tmp_path):
    """With ECG_SIGNAL_SOURCE = the built-in signal model (no AD8232 wired) the Uno streams an ECG:
    10-bit samples around mid-scale with R peaks at about 72 beats per minute, no gaps, no lead-off."""
    elf, _ = _uno_build(demo_bundle[1], tmp_path, "-DECG_SIGNAL_SOURCE=ECG_SOURCE_SIGNAL_MODEL")
    data, min_sp = _simulate(uno_sim, elf, tmp_path, 3.0, 0)  # ADC0 at 0 V: the samples come from the model
    messages = [decode_message(f) for f in Reader().feed(data)]
    assert isinstance(messages[0], Info)
    samples = [m for m in messages if isinstance(m, Samples)]
    firsts = [s.first_sample for s in samples]
    assert firsts[0] == 0 and all(b == a + len(s.values) for a, b, s in zip(firsts, firsts[1:], samples))
    values = [v for s in samples for v in s.values]
    assert len(values) >= 700 and not any(f for s in samples for f in s.lead_off)
    median = sorted(values)[len(values) // 2]
    assert 300 <= median <= 724 and 0 <= min(values) and max(values) <= 1023
    # R peaks: local maxima well above the baseline, 2.5 to 5 in 3 s at 72 bpm (RR varies +-4 %).
    high = median + (max(values) - median) // 2
    peaks = [i for i in range(1, len(values) - 1) if values[i] >= high and values[i] >= values[i - 1] and values[i] > values[i + 1]]
    assert max(values) - median >= 150
    assert 2 <= len(peaks) <= 5, peaks
    assert min_sp - _bss_end(elf) >= STACK_MARGIN


def test_uno_text_mode_for_the_serial_plotter(avr_toolchain, uno_sim, demo_bundle, tmp_path):
    """Built with ECG_APP_TEXT 1 (src/ecg_app_config.h, as an IDE user sets it) the Uno starts with a hello line (no INFO frame) and prints one
    `ecg:<counts>,lead_off:<0|1>` line per sample (no heart rate without the model); COMMAND TEXT 0
    is ACKed and brings the frames back. What the Arduino IDE's Serial Monitor and Plotter show."""
    elf, out = _uno_build(demo_bundle[1], tmp_path, app_config="#define ECG_APP_TEXT 1\n")
    frames_again = Encoder(seq=9).encode(Command(CommandCode.TEXT, 0))
    data, min_sp = _simulate(uno_sim, elf, tmp_path, 1.3, 2500, "0.5:lo+=1", "0.7:lo+=0", "1.0:rx=" + frames_again.hex())
    text, _, rest = data.partition(b"\xa5\x5a")  # up to the first frame (the ACK)
    lines = text.decode("ascii").split("\r\n")
    assert lines[0].startswith("ecg-edge: ") and "text mode, 250 Hz, 10-bit ADC" in lines[0] and "not a medical device" in lines[0]
    samples = [ln for ln in lines[1:] if ln]
    assert all(re.fullmatch(r"ecg:511,lead_off:[01]", ln) for ln in samples[:-1]), samples[:5]
    assert abs(len(samples) - 250) <= 15  # 1.0 s at 250 Hz, less what is still in the ring
    flagged = [i for i, ln in enumerate(samples) if ln.endswith("lead_off:1")]
    assert abs(len(flagged) - 50) <= 1 and flagged == list(range(flagged[0], flagged[0] + len(flagged)))
    messages = [decode_message(f) for f in Reader().feed(b"\xa5\x5a" + rest)]
    assert isinstance(messages[0], Ack) and messages[0].seq == 9
    assert any(isinstance(m, Samples) for m in messages[1:])
    assert min_sp - _bss_end(elf) >= STACK_MARGIN
    ram = re.search(r"Global variables use (\d+) bytes", out)
    print(f"Uno with ECG_APP_TEXT 1: {ram.group(0) if ram else out[-500:]}")


# ------------------------------------------------------------------ ESP32 family: configuration only
# No Arduino-ESP32 core here: the configuration block is run through the host's C preprocessor with the
# macros the core defines (ARDUINO_ARCH_ESP32, sdkconfig's CONFIG_IDF_TARGET_*), and the pins it picks
# are checked against the chips' documentation (ESP-IDF ADC guide: ESP32 ADC1 is GPIO32-39, ESP32-C3
# ADC1 is GPIO0-4; ESP32-C3 strapping pins GPIO2/8/9, SPI flash GPIO11-17, USB GPIO18/19, UART0 GPIO20/21).

ESP32_ADC1 = {"ESP32": set(range(32, 40)), "ESP32C3": set(range(0, 5))}
ESP32_RESERVED = {"ESP32": {0, 2, 5, 12, 15, *range(6, 12), 1, 3}, "ESP32C3": {2, 8, 9, *range(11, 18), 18, 19, 20, 21}}
ESP32_GPIO_COUNT = {"ESP32": 40, "ESP32C3": 22}


def _configuration(*defines: str) -> subprocess.CompletedProcess[str]:
    """The .ino's configuration block through `cc -E` with `defines`; prints the pins and the baud rate."""
    text = (SKETCH / "ecg_edge.ino").read_text()
    start = text.index("// ================================ configuration")
    end = text.index("// =====", start + 10)
    probe = text[start:end] + "\nECG_PROBE ECG_PIN_OUTPUT ECG_PIN_LO_PLUS ECG_PIN_LO_MINUS ECG_BAUD\n"
    return subprocess.run(["cc", "-E", "-P", "-x", "c", *(f"-D{d}" for d in defines), "-"], input=probe, capture_output=True, text=True)


def _pins(*defines: str) -> list[str]:
    proc = _configuration(*defines)
    assert proc.returncode == 0, proc.stderr
    return next(ln for ln in proc.stdout.splitlines() if ln.startswith("ECG_PROBE")).split()[1:]


@pytest.mark.parametrize("chip", ["ESP32", "ESP32C3"])
def test_esp32_pins_are_adc1_and_free(chip):
    output, lo_plus, lo_minus, baud = _pins("ARDUINO_ARCH_ESP32", f"CONFIG_IDF_TARGET_{chip}")
    pins = [int(output), int(lo_plus), int(lo_minus)]
    assert pins[0] in ESP32_ADC1[chip], f"{chip}: ECG_PIN_OUTPUT {pins[0]} is not an ADC1 pin"
    assert len(set(pins)) == 3 and all(0 <= p < ESP32_GPIO_COUNT[chip] for p in pins)
    assert not set(pins) & ESP32_RESERVED[chip], f"{chip}: {set(pins) & ESP32_RESERVED[chip]} are reserved pins"
    assert baud == "115200"


def test_esp32_c3_pins_and_other_boards():
    assert _pins("ARDUINO_ARCH_ESP32", "CONFIG_IDF_TARGET_ESP32C3")[:3] == ["3", "6", "7"]
    assert _pins("ARDUINO_ARCH_ESP32", "CONFIG_IDF_TARGET_ESP32C3", "ECG_PIN_OUTPUT=4", "ECG_PIN_LO_PLUS=5", "ECG_PIN_LO_MINUS=10")[:3] == ["4", "5", "10"]
    assert _pins("ARDUINO_ARCH_AVR")[:3] == ["A0", "10", "11"]  # the Uno and the others keep theirs
    proc = _configuration("ARDUINO_ARCH_ESP32", "CONFIG_IDF_TARGET_ESP32S3")  # a variant without defaults stops
    assert proc.returncode != 0 and "choose an ADC1 pin and two inputs for this ESP32 variant" in proc.stderr


def _platformio_env(name: str) -> dict[str, str]:
    """An environment of firmware/platformio.ini as PlatformIO resolves it: [env], then `extends`, then
    its own options, with ${env.X} and ${env:NAME.X} references expanded."""
    import configparser

    ini = configparser.ConfigParser(interpolation=None)
    ini.read(REPO / "firmware" / "platformio.ini")
    section = dict(ini[f"env:{name}"])
    base = _platformio_env(section.pop("extends").removeprefix("env:")) if "extends" in section else dict(ini["env"])

    def ref(m: re.Match[str]) -> str:
        return ini["env"][m.group(2)] if m.group(1) == "env" else _platformio_env(m.group(1)[4:])[m.group(2)]

    return {**base, **{k: re.sub(r"\$\{(env(?::[\w-]+)?)\.(\w+)\}", ref, v) for k, v in section.items()}}


def test_platformio_esp32c3_environment():
    c3, esp32 = _platformio_env("esp32c3"), _platformio_env("esp32dev")
    assert c3["board"] == "esp32-c3-devkitm-1" and esp32["board"] == "esp32dev"
    for key in ("platform", "framework", "build_flags", "build_unflags", "monitor_speed", "lib_deps"):
        assert c3.get(key) == esp32.get(key), key  # the ESP32's flags, -O2 and no FMA contraction included
    assert {"-ffp-contract=off", "-fno-fast-math", "-O2"} <= set(esp32["build_flags"].split()) and esp32["build_unflags"] == "-Os"
    assert "esp32c3" in (REPO / "firmware" / "platformio.ini").read_text().split("[env:esp32c3]")[0]  # named in the usage line
