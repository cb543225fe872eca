"""Business operations. Each service owns its transaction and writes the audit trail."""
