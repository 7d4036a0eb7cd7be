"""The settlement math (../shared/METHODOLOGY.md): pure functions over Decimal, no I/O."""
