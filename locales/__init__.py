"""The bot's texts: Fluent files in `<locale>/*.ftl`, shipped as package data in the wheel."""
