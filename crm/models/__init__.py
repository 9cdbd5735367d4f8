"""The CRM's models, one module per concern."""
from .base import Entity, Tag
from .contacts import Email, MessengerHandle, Phone
from .customers import Company, Customer
from .imports import DuplicatePolicy, ImportBatch, ImportRow
from .intake import IncomingRequest, IntakeConfigStamp, IntakeSettings, IntegrationToken, RepeatSalesSettings
from .orders import Order, OrderItem
from .sales import Deal, Lead, Pipeline, Stage
from .timeline import Attachment, Call, ChatMessage, EmailMessage, Note, SmsMessage, Task

__all__ = [
    "Attachment",
    "Call",
    "ChatMessage",
    "Company",
    "Customer",
    "Deal",
    "Email",
    "EmailMessage",
    "Entity",
    "DuplicatePolicy",
    "ImportBatch",
    "ImportRow",
    "IncomingRequest",
    "IntakeConfigStamp",
    "IntakeSettings",
    "IntegrationToken",
    "Lead",
    "MessengerHandle",
    "Note",
    "Order",
    "OrderItem",
    "Phone",
    "Pipeline",
    "RepeatSalesSettings",
    "SmsMessage",
    "Stage",
    "Tag",
    "Task",
]
