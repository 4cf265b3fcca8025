"""mnv3 doctor's facts (mnv3cli.inference.doctor) and their rendering within 80 columns."""

from __future__ import annotations

from pathlib import Path

from mnv3cli.cli.doctor import render
from mnv3cli.inference import list_backends
from mnv3cli.inference.doctor import cache_status, cpu_flags, diagnose, installed_version


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni amx_tile\n\nflags : fpu\n")
    flags = cpu_flags(cpuinfo)
    assert flags is not None
    assert flags["AVX2"] and flags["AVX-512"] and flags["AVX-512 VNNI"] and flags["AMX"]
    assert not flags["AVX-512 BF16"] and not flags["AMX BF16"] and not flags["AVX-VNNI"]


def test_cpu_flags_unknown_without_cpuinfo(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") is None
    (tmp_path / "noflags").write_text("processor : 0\n")
    assert cpu_flags(tmp_path / "noflags") is None


def test_cache_status_counts_entries_and_bytes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MNV3_CACHE", str(tmp_path / "cache"))
    assert not cache_status().exists
    for name, size in (("a" * 16, 1000), ("b" * 16, 234)):
        (tmp_path / "cache" / name).mkdir(parents=True)
        (tmp_path / "cache" / name / "model.onnx").write_bytes(b"x" * size)
    (tmp_path / "cache" / ".tmp-build").mkdir()  # a build in progress is no entry
    status = cache_status()
    assert (status.exists, status.entries, status.bytes) == (True, 2, 1234)
    assert status.path == str(tmp_path / "cache")


def test_report_names_every_backend_and_hides_secrets(monkeypatch) -> None:
    monkeypatch.setenv("MNV3_API_KEY", "s3cret-value")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    report = diagnose(import_torch=False)
    assert [b.name for b in report.backends] == [e.name for e in list_backends()]
    assert report.environment["MNV3_API_KEY"] == "(set)"
    assert report.environment["OMP_NUM_THREADS"] == "3"
    assert report.torch.importable is None
    assert report.versions["mnv3cli"] is not None
    assert installed_version("no-such-package-mnv3") is None
    text = "\n".join(render(report))
    assert "s3cret" not in text and "s3cret" not in str(report.to_dict())
    assert "not checked (--no-torch)" in text


def test_render_fits_80_columns(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MNV3_CACHE", str(tmp_path / ("a-long-folder-name-" * 8)))
    lines = render(diagnose(import_torch=False))
    assert max(map(len, lines)) <= 80
    assert any(line.startswith("ONNX cache") for line in lines)
