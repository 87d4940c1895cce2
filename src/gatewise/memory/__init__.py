"""Conversation memory and assistants.

A conversation id keeps the conversation server-side (`MemoryMiddleware`: history in, the new
turn and answer out, older turns summarised when the context window is outgrown); a named
assistant brings its instructions, persona, caller context, model and tools
(`AssistantMiddleware`). `ConversationMemory` is what the API and the library use to list,
read and delete conversations. Built from config by `build_memory`.
"""

from gatewise.memory.assistants import AssistantMiddleware
from gatewise.memory.build import build_memory, build_middlewares
from gatewise.memory.middleware import MemoryMiddleware
from gatewise.memory.service import Conversation, ConversationMemory

__all__ = ["AssistantMiddleware", "Conversation", "ConversationMemory", "MemoryMiddleware",
           "build_memory", "build_middlewares"]
