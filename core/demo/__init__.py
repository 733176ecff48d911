"""The `defectline demo` command: a simulated line inspected end to end on the local stack."""
