"""Read-only queries of the CRM."""
from .models import Company, Customer, Deal, Lead, Order


def record_counts() -> dict[str, int]:
    """Return how many customers, companies, leads, deals and orders there are."""
    return {
        "customers": Customer.objects.count(),
        "companies": Company.objects.count(),
        "leads": Lead.objects.count(),
        "deals": Deal.objects.count(),
        "orders": Order.objects.count(),
    }
