// TandemBus module.
