// TandemService module.
