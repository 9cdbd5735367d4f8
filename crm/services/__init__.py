"""Services of the CRM: functions that change data, one module per concern (importing, demo data, ...)."""
