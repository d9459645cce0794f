"""The stall's LAN: tablet sessions, roles, the manager PIN and attempt limits."""
