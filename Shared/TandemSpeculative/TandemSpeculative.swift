// TandemSpeculative module.
