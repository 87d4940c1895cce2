"""OpenAI's Responses API at the edge: requests in the Responses shape become canonical chat
requests (`inbound`), canonical answers and streams go back as Response objects and the
Responses event sequence (`outbound`), and stored responses live in the conversation store
(`store`) so `previous_response_id` works on every replica."""
