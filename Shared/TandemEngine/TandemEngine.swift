// TandemEngine module.
