"""Channel types by name: their settings models and how to build a notifier.

Adding a channel means one module with ``Settings`` (a pydantic model whose ``type``
is a ``Literal``) and ``build(name, settings, ctx)``, and one line in ``_MODULES``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from ingest.notify import apprise_channel, email, file, stdout, webhook
from ingest.notify.base import ChannelContext, Notifier

_MODULES: tuple[ModuleType, ...] = (stdout, file, webhook, email, apprise_channel)

ChannelSettings = (stdout.Settings | file.Settings | webhook.Settings | email.Settings
                   | apprise_channel.Settings)

_BUILDERS: dict[str, Callable[[str, Any, ChannelContext], Notifier]] = {
    module.Settings.model_fields["type"].annotation.__args__[0]: module.build
    for module in _MODULES
}

CHANNEL_TYPES: tuple[str, ...] = tuple(_BUILDERS)


def build_notifier(name: str, settings: ChannelSettings, ctx: ChannelContext) -> Notifier:
    """A notifier for the configured channel ``name``."""
    return _BUILDERS[settings.type](name, settings, ctx)
