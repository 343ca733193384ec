"""The connector registry: destination kind -> connector class."""

from activations.connectors.base import Connector, ConnectorError, Outbound, PreparedRequest, RecordResult

_REGISTRY: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    _REGISTRY[cls.kind] = cls
    return cls


def connector_class(kind: str) -> type[Connector]:
    _load()
    try:
        return _REGISTRY[kind]
    except KeyError as error:
        raise ConnectorError(f"no connector for destination kind {kind!r}") from error


def connector_for(destination) -> Connector:
    return connector_class(destination.kind)(destination)


def connector_classes() -> dict[str, type[Connector]]:
    _load()
    return dict(_REGISTRY)


def _load() -> None:
    if _REGISTRY:
        return
    from activations.connectors import braze, csv_export, hubspot, meta, salesforce, twilio, webhook

    for cls in (
        webhook.WebhookConnector,
        braze.BrazeConnector,
        salesforce.SalesforceConnector,
        hubspot.HubSpotConnector,
        twilio.TwilioConnector,
        meta.MetaAudienceConnector,
        csv_export.CsvExportConnector,
    ):
        register(cls)


__all__ = [
    "Connector",
    "ConnectorError",
    "Outbound",
    "PreparedRequest",
    "RecordResult",
    "connector_class",
    "connector_for",
    "connector_classes",
]
