"""Trigger models: what enrols a contact into a flow. Ids and parameters follow TRIGGERS.md (a contract)."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, TypeAlias, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from journeys.domain.durations import Duration
from journeys.domain.refs import EmailRef, FieldName, Name, TimeOfDay, Url, type_required


def _keyword(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{2,30}", value):
        raise ValueError(f"{value!r} is not a keyword: use 2–30 letters or digits, no spaces")
    return value


def _event_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{2,30}", value):
        raise ValueError(f"{value!r} is not an event name: use 2–30 letters, digits, `_` or `-`")
    return value


Keyword = Annotated[
    str, AfterValidator(_keyword), Field(json_schema_extra={"pattern": "^[A-Za-z0-9]{2,30}$"})
]
EventName = Annotated[
    str, AfterValidator(_event_name), Field(json_schema_extra={"pattern": "^[A-Za-z0-9_-]{2,30}$"})
]
ProductIds = Annotated[
    list[Annotated[str, Field(min_length=1)]], Field(min_length=1, max_length=100)
]


class _Trigger(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=type_required)

    # Catalog facts (TRIGGERS.md), not parameters: they drive validation and arming.
    kind: ClassVar[Literal["instant", "timer"]] = "instant"
    alone: ClassVar[bool] = False
    transactional: ClassVar[bool] = False
    yearly: ClassVar[bool] = False
    needs_sms: ClassVar[bool] = False


# --- Contact activity -------------------------------------------------------------------------


class TagAdded(_Trigger):
    """A specific tag is added to the contact."""

    type: Literal["tag_added"] = "tag_added"
    tag: Name


class SignedUpEmail(_Trigger):
    """The contact subscribes to email marketing (optionally also when imported)."""

    type: Literal["signed_up_email"] = "signed_up_email"
    include_imported: bool = False


class SmsKeyword(_Trigger):
    """The contact texts this keyword (whole message, case-insensitive)."""

    type: Literal["sms_keyword"] = "sms_keyword"
    needs_sms: ClassVar[bool] = True
    keyword: Keyword


class SignedUpSms(_Trigger):
    """The contact subscribes to SMS marketing (optionally also when imported)."""

    type: Literal["signed_up_sms"] = "signed_up_sms"
    needs_sms: ClassVar[bool] = True
    include_imported: bool = False


class JoinedGroup(_Trigger):
    """The contact joins an audience group."""

    type: Literal["joined_group"] = "joined_group"
    group: Name


class LeftGroup(_Trigger):
    """The contact leaves an audience group."""

    type: Literal["left_group"] = "left_group"
    group: Name


class FieldChanged(_Trigger):
    """An audience field changes *to* this value."""

    type: Literal["field_changed"] = "field_changed"
    field: FieldName
    value: str | int | float | bool


class PageVisited(_Trigger):
    """The contact views a page of the tracked website (`*` is a wildcard)."""

    type: Literal["page_visited"] = "page_visited"
    url: Url


class WebsiteLinkClicked(_Trigger):
    """The contact clicks a link on the tracked website (`*` is a wildcard)."""

    type: Literal["website_link_clicked"] = "website_link_clicked"
    url: Url


class ManualAdd(_Trigger):
    """An operator adds contacts through the API or CLI."""

    type: Literal["manual_add"] = "manual_add"


# --- Dates and special events -----------------------------------------------------------------


class _DateTrigger(_Trigger):
    kind: ClassVar[Literal["instant", "timer"]] = "timer"
    offset_days: int = Field(
        0, ge=-365, le=365, description="Days after (+) or before (-) the date."
    )
    time_of_day: TimeOfDay = "09:00"


class SpecificDate(_DateTrigger):
    """Once, on the date held in a contact field (± offset)."""

    type: Literal["specific_date"] = "specific_date"
    field: FieldName


class SignupDate(_DateTrigger):
    """Every year on the anniversary of the day the contact joined the audience (+ offset)."""

    type: Literal["signup_date"] = "signup_date"
    yearly: ClassVar[bool] = True
    offset_days: int = Field(
        0, ge=0, le=365, description="Days after the anniversary of the signup date."
    )


class Birthday(_DateTrigger):
    """Every year on (or some days before) the contact's birthday."""

    type: Literal["birthday"] = "birthday"
    yearly: ClassVar[bool] = True
    offset_days: int = Field(0, ge=-365, le=0, description="0, or days before (negative).")


class RecurringDate(_DateTrigger):
    """Every year on the month/day held in a contact field (± offset)."""

    type: Literal["recurring_date"] = "recurring_date"
    yearly: ClassVar[bool] = True
    field: FieldName


# --- Purchase activity ------------------------------------------------------------------------


class PurchasedAnyProduct(_Trigger):
    """The contact buys anything."""

    type: Literal["purchased_any_product"] = "purchased_any_product"


class PurchasedSpecificProduct(_Trigger):
    """The contact buys one of these products."""

    type: Literal["purchased_specific_product"] = "purchased_specific_product"
    product_ids: ProductIds


class TimeSinceLastPurchase(_Trigger):
    """This many days pass without a purchase; every purchase restarts the count."""

    type: Literal["time_since_last_purchase"] = "time_since_last_purchase"
    kind: ClassVar[Literal["instant", "timer"]] = "timer"
    days: int = Field(ge=1, le=3650)


class ShopifyViewedPage(_Trigger):
    """The contact views a storefront page (any, or this URL)."""

    type: Literal["shopify_viewed_page"] = "shopify_viewed_page"
    url: Url | None = None


class ShopifyViewedProduct(_Trigger):
    """The contact views a product (any, this product, or any of this collection)."""

    type: Literal["shopify_viewed_product"] = "shopify_viewed_product"
    product_id: str | None = Field(None, min_length=1)
    collection_id: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_filter(self) -> ShopifyViewedProduct:
        if self.product_id and self.collection_id:
            raise ValueError("give product_id or collection_id, not both")
        return self


class ShopifySearched(_Trigger):
    """The contact searches the store (anything, or this term)."""

    type: Literal["shopify_searched"] = "shopify_searched"
    term: str | None = Field(None, min_length=1, max_length=200)


class ShopifyAddedToCart(_Trigger):
    """The contact adds a product (any, or this one) to the cart."""

    type: Literal["shopify_added_to_cart"] = "shopify_added_to_cart"
    product_id: str | None = Field(None, min_length=1)


class ShopifyCheckoutAction(_Trigger):
    """The contact reaches a checkout stage."""

    type: Literal["shopify_checkout_action"] = "shopify_checkout_action"
    action: Literal["started", "payment_submitted", "completed"]


class ShopifyLowInventoryAddedToCart(_Trigger):
    """The contact adds a low-stock product (any, or this one) to the cart."""

    type: Literal["shopify_low_inventory_added_to_cart"] = "shopify_low_inventory_added_to_cart"
    product_id: str | None = Field(None, min_length=1)


class ShopifyBackInStock(_Trigger):
    """A product the contact had in its cart while low or out of stock is restocked."""

    type: Literal["shopify_back_in_stock"] = "shopify_back_in_stock"
    product_id: str | None = Field(None, min_length=1)


class AbandonedCart(_Trigger):
    """A cart is created and checkout is not completed within `wait`."""

    type: Literal["abandoned_cart"] = "abandoned_cart"
    kind: ClassVar[Literal["instant", "timer"]] = "timer"
    alone: ClassVar[bool] = True
    wait: Duration = "1h"


class AbandonedCartSpecificProducts(_Trigger):
    """Like abandoned_cart, for carts holding (or not holding) given products."""

    type: Literal["abandoned_cart_specific_products"] = "abandoned_cart_specific_products"
    kind: ClassVar[Literal["instant", "timer"]] = "timer"
    alone: ClassVar[bool] = True
    wait: Duration = "1h"
    include_product_ids: ProductIds | None = None
    exclude_product_ids: ProductIds | None = None

    @model_validator(mode="after")
    def _include_or_exclude(self) -> AbandonedCartSpecificProducts:
        if (self.include_product_ids is None) == (self.exclude_product_ids is None):
            raise ValueError("give include_product_ids or exclude_product_ids (exactly one)")
        return self


class _Transactional(_Trigger):
    alone: ClassVar[bool] = True
    transactional: ClassVar[bool] = True


class OrderConfirmation(_Transactional):
    """An order is placed (transactional)."""

    type: Literal["order_confirmation"] = "order_confirmation"


class CancellationConfirmation(_Transactional):
    """An order is cancelled (transactional)."""

    type: Literal["cancellation_confirmation"] = "cancellation_confirmation"


class OrderInvoice(_Transactional):
    """An order is paid (transactional)."""

    type: Literal["order_invoice"] = "order_invoice"


class ShippingConfirmation(_Transactional):
    """An order is shipped (transactional)."""

    type: Literal["shipping_confirmation"] = "shipping_confirmation"


class RefundConfirmation(_Transactional):
    """An order is refunded (transactional)."""

    type: Literal["refund_confirmation"] = "refund_confirmation"


# --- Marketing activity -----------------------------------------------------------------------


class EmailSent(_Trigger):
    """A specific email is sent to the contact."""

    type: Literal["email_sent"] = "email_sent"
    email: EmailRef


class EmailOpened(_Trigger):
    """The contact opens a specific email."""

    type: Literal["email_opened"] = "email_opened"
    email: EmailRef


class CampaignUnopened(_Trigger):
    """The contact has not opened a specific email `within` its sending."""

    type: Literal["campaign_unopened"] = "campaign_unopened"
    kind: ClassVar[Literal["instant", "timer"]] = "timer"
    email: EmailRef
    within: Duration


class EmailClickedAnyLink(_Trigger):
    """The contact clicks any link of a specific email."""

    type: Literal["email_clicked_any_link"] = "email_clicked_any_link"
    email: EmailRef


class EmailNotClicked(_Trigger):
    """The contact has clicked no link of a specific email `within` its sending."""

    type: Literal["email_not_clicked"] = "email_not_clicked"
    kind: ClassVar[Literal["instant", "timer"]] = "timer"
    email: EmailRef
    within: Duration


class EmailClickedSpecificLink(_Trigger):
    """The contact clicks one link of a specific email."""

    type: Literal["email_clicked_specific_link"] = "email_clicked_specific_link"
    email: EmailRef
    url: Url


class SurveyResponded(_Trigger):
    """The contact answers a survey (optionally: a question, with an answer)."""

    type: Literal["survey_responded"] = "survey_responded"
    survey_id: str = Field(min_length=1)
    question: str | None = Field(None, min_length=1)
    answer: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _answer_needs_question(self) -> SurveyResponded:
        if self.answer is not None and self.question is None:
            raise ValueError("an answer filter needs the question it answers")
        return self


# --- API and integrations ---------------------------------------------------------------------


class FlowApi(_Trigger):
    """The flow's trigger URL is called with the contact."""

    type: Literal["flow_api"] = "flow_api"


class EventApi(_Trigger):
    """A custom event with this name is posted for the contact."""

    type: Literal["event_api"] = "event_api"
    event_name: EventName


class EventbriteAnyCheckin(_Trigger):
    """The contact checks in at any Eventbrite event."""

    type: Literal["eventbrite_any_checkin"] = "eventbrite_any_checkin"


class EventbriteAnyTicketPurchase(_Trigger):
    """The contact buys a ticket for any Eventbrite event."""

    type: Literal["eventbrite_any_ticket_purchase"] = "eventbrite_any_ticket_purchase"


class EventbriteEventPurchase(_Trigger):
    """The contact buys a ticket for one Eventbrite event."""

    type: Literal["eventbrite_event_purchase"] = "eventbrite_event_purchase"
    event_id: str = Field(min_length=1)


class EventbriteEventCheckin(_Trigger):
    """The contact checks in at one Eventbrite event."""

    type: Literal["eventbrite_event_checkin"] = "eventbrite_event_checkin"
    event_id: str = Field(min_length=1)


class LivechatChatFinished(_Trigger):
    """A LiveChat conversation with the contact ends."""

    type: Literal["livechat_chat_finished"] = "livechat_chat_finished"


class ZapierCustomEvent(_Trigger):
    """A Zapier zap sends this event for the contact."""

    type: Literal["zapier_custom_event"] = "zapier_custom_event"
    event_name: EventName


# The tagged union of every trigger model above, written out so a type checker sees each member.
Trigger: TypeAlias = Annotated[
    TagAdded | SignedUpEmail | SmsKeyword | SignedUpSms | JoinedGroup | LeftGroup | FieldChanged |
    PageVisited | WebsiteLinkClicked | ManualAdd | SpecificDate | SignupDate | Birthday |
    RecurringDate | PurchasedAnyProduct | PurchasedSpecificProduct | TimeSinceLastPurchase |
    ShopifyViewedPage | ShopifyViewedProduct | ShopifySearched | ShopifyAddedToCart |
    ShopifyCheckoutAction | ShopifyLowInventoryAddedToCart | ShopifyBackInStock | AbandonedCart |
    AbandonedCartSpecificProducts | OrderConfirmation | CancellationConfirmation | OrderInvoice |
    ShippingConfirmation | RefundConfirmation | EmailSent | EmailOpened | CampaignUnopened |
    EmailClickedAnyLink | EmailNotClicked | EmailClickedSpecificLink | SurveyResponded | FlowApi |
    EventApi | EventbriteAnyCheckin | EventbriteAnyTicketPurchase | EventbriteEventPurchase |
    EventbriteEventCheckin | LivechatChatFinished | ZapierCustomEvent,
    Field(discriminator="type"),
]  # fmt: skip

# Its members, in order, read back from the union: one list, so the two cannot disagree.
TRIGGER_MODELS: tuple[type[_Trigger], ...] = get_args(get_args(Trigger)[0])

TRIGGER_TYPES: frozenset[str] = frozenset(m.model_fields["type"].default for m in TRIGGER_MODELS)
