"""Google's Gemini API (Generative Language API, v1beta): generateContent, SSE streams, embeddings."""
