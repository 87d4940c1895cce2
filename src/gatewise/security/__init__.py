"""Security: virtual keys, roles and permissions, encrypted provider credentials, audit log."""
