"""CCLF parse rate on one core: fixed-width records to canonical claim lines (the loader's whole job).

Run: python -m bench.cclf_parse [LINES]  (make bench runs it too)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from bench.machine import header
from readers.base import LoadOptions
from readers.cclf import CclfLoader, format_record


def write_feed(folder: Path, lines: int) -> list[Path]:
    part_b = folder / "P.A0001.ACO.ZC5Y25.D250301.T0100000"
    part_a = folder / "P.A0001.ACO.ZC1Y25.D250301.T0100000"
    with part_b.open("w", encoding="ascii") as b, part_a.open("w", encoding="ascii") as a:
        for n in range(lines):
            day = f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}"
            if n % 10 == 0:
                a.write(format_record(
                    "1", CUR_CLM_UNIQ_ID=f"{n:013d}", BENE_MBI_ID=f"1AB{n % 100_000:08d}", CLM_TYPE_CD="60",
                    CLM_FROM_DT=day, CLM_THRU_DT=day, CLM_PMT_AMT=f"{n % 90_000}.{n % 100:02d}", CLM_ADJSMT_TYPE_CD="0",
                    CLM_EFCTV_DT=day, CLM_IDR_LD_DT=day,
                ) + "\n")  # fmt: skip
            else:
                b.write(format_record(
                    "5", CUR_CLM_UNIQ_ID=f"{n:013d}", CLM_LINE_NUM=f"{1 + n % 5:010d}", BENE_MBI_ID=f"1AB{n % 100_000:08d}",
                    CLM_TYPE_CD="71", CLM_LINE_FROM_DT=day, CLM_LINE_THRU_DT=day, CLM_LINE_CVRD_PD_AMT=f"{n % 900}.{n % 100:02d}",
                    CLM_CARR_PMT_DNL_CD="1", CLM_PRCSG_IND_CD="A", CLM_ADJSMT_TYPE_CD="1" if n % 7 == 0 else "0",
                    CLM_EFCTV_DT=day, CLM_IDR_LD_DT=day,
                ) + "\n")  # fmt: skip
    return [part_a, part_b]


def measure(lines: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_feed(Path(tmp), lines)
        started = time.perf_counter()
        count = sum(1 for item in CclfLoader().read(paths, LoadOptions()) if isinstance(item, dict))
        elapsed = time.perf_counter() - started
    assert count == lines, (count, lines)
    return lines / elapsed


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    print(header())
    rate = measure(lines)
    print(f"cclf_parse_lines_per_s={rate:,.0f}  ({lines:,} CCLF1/CCLF5 records, one core)")


if __name__ == "__main__":
    main()
