"""KLINEO benchmarks: each module measures a design.md target, printing figure, verdict, machine, command."""
