"""The Anthropic Messages API at the edge: requests in Anthropic's shape become canonical chat
requests (`inbound`), canonical answers and streams go back in Anthropic's shape (`outbound`).
The provider adapter (`providers/anthropic/`) does the opposite trip, towards Anthropic."""
