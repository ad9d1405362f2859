// TandemTelemetry module.
