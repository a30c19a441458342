"""The pipeline: bytes -> chunks -> symbols -> (engine, coding) -> lm frame payloads, and back.

chunker: where chunks end and which are text; tokens: bytes <-> the model's symbols; codec: one model with the
options that shape its output, coding batches of chunks; mixed and plain: the frame coders of coder versions 2
and 1, which drive the engine and the coding layer side by side; budget: how many frames decode within a memory
budget.
"""
