"""The Textual application: app, screens, widgets and messages. The only layer that
imports Textual."""
