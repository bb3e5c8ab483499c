#!/usr/bin/env python3
"""The official `openai` Python SDK against respawn's OpenAI-compatible routes (/v1), on the
bundled demo model (models/demo.pt, byte-level: a token is a byte): models.list, completions and
chat completions, plain and streamed (with stream_options.include_usage), logprobs, seeds, the
asyncio client, and errors that surface as the SDK's exceptions with the right status. The
client validates the answers against its own types (_strict_response_validation), so a shape
it cannot parse fails here (except streamed completions: see that test).

  python tests/python/test_openai_sdk.py [--bin-dir build/bin] [--models-dir models] [unittest args]

Run by ctest (tests/CMakeLists.txt); exits 77 (skipped) when openai is not installed. It
replaces tests/manual/openai_client.mjs, the same checks by hand with the npm client.
"""
import asyncio
import json
import unittest

import respawn_harness as h

if __name__ == "__main__":
    h.require("openai")

import openai  # noqa: E402

MODEL = "demo"
PROMPT = "The supervisor"


class OpenAiSdkTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = h.Server(["--model", h.model_path("demo.pt")])
        cls.base_url = f"http://{cls.server.url}/v1"
        # No retries: an error must reach the test as it came.
        cls.client = openai.OpenAI(base_url=cls.base_url, api_key="unused", max_retries=0,
                                   timeout=60, _strict_response_validation=True)
        cls.lenient = openai.OpenAI(base_url=cls.base_url, api_key="unused", max_retries=0,
                                    timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.lenient.close()
        cls.server.close()

    def generate(self, prompt, **parameters):
        """What /v2/models/demo/generate answers for the same request (greedy by default)."""
        status, _, body = self.server.request(
            "POST", f"/v2/models/{MODEL}/generate",
            {"text_input": prompt, "parameters": {"temperature": 0, **parameters}})
        self.assertEqual(status, 200, body)
        return json.loads(body)

    # --- models ---

    def test_models_list(self):
        models = self.client.models.list()
        self.assertEqual([m.id for m in models.data], [MODEL])
        self.assertEqual(models.data[0].object, "model")
        self.assertIsInstance(models.data[0].created, int)

    # --- completions ---

    def test_completion(self):
        c = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20,
                                           temperature=0, stop=["queue"])
        self.assertTrue(c.id.startswith("cmpl-"), c.id)
        self.assertEqual(c.object, "text_completion")
        self.assertEqual(c.model, MODEL)
        self.assertEqual(len(c.choices), 1)
        choice = c.choices[0]
        expected = self.generate(PROMPT, max_tokens=20, stop=["queue"])
        self.assertEqual(choice.text, expected["text_output"])
        self.assertEqual(choice.finish_reason, expected["finish_reason"])
        self.assertEqual(choice.index, 0)
        self.assertIsNone(choice.logprobs)
        self.assertEqual(c.usage.prompt_tokens, len(PROMPT.encode()))
        self.assertEqual(c.usage.completion_tokens, expected["usage"]["completion_tokens"])
        self.assertEqual(c.usage.total_tokens, c.usage.prompt_tokens + c.usage.completion_tokens)

    def test_completion_ends_at_a_stop_string(self):
        c = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=60,
                                           temperature=0, stop=["queue"])
        expected = self.generate(PROMPT, max_tokens=60, stop=["queue"])
        self.assertEqual(expected["finish_reason"], "stop", expected)
        self.assertEqual(c.choices[0].finish_reason, "stop")
        self.assertEqual(c.choices[0].text, expected["text_output"])
        self.assertNotIn("queue", c.choices[0].text)

    def test_streamed_completion_adds_up_to_the_plain_one(self):
        plain = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20,
                                               temperature=0)
        # The SDK types a streamed completion chunk as a Completion, whose finish_reason may not
        # be null; OpenAI's own chunks have it null until the last, as respawn's do. So this one
        # is parsed without strict validation.
        chunks = list(self.lenient.completions.create(model=MODEL, prompt=PROMPT, max_tokens=20,
                                                      temperature=0, stream=True,
                                                      stream_options={"include_usage": True}))
        text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
        self.assertEqual(text, plain.choices[0].text)
        finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        self.assertEqual(finishes, [plain.choices[0].finish_reason])
        self.assertTrue(all(ch.object == "text_completion" for ch in chunks))
        self.assertEqual(len({ch.id for ch in chunks}), 1)
        usage = [ch.usage for ch in chunks if ch.usage]
        self.assertEqual(len(usage), 1)
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(usage[0].completion_tokens, plain.usage.completion_tokens)
        self.assertEqual(usage[0].prompt_tokens, plain.usage.prompt_tokens)

    def test_completion_logprobs(self):
        c = self.client.completions.create(model=MODEL, prompt=PROMPT, max_tokens=6,
                                           temperature=0, logprobs=2)
        lp = c.choices[0].logprobs
        self.assertEqual(len(lp.tokens), 6)
        self.assertEqual("".join(lp.tokens), c.choices[0].text)
        self.assertEqual(len(lp.token_logprobs), 6)
        self.assertTrue(all(v <= 0 for v in lp.token_logprobs))
        self.assertEqual(len(lp.top_logprobs), 6)
        self.assertTrue(all(len(top) == 2 for top in lp.top_logprobs), lp.top_logprobs)
        # Each token starts where the one before it ends.
        self.assertEqual([b - a for a, b in zip(lp.text_offset, lp.text_offset[1:])],
                         [len(t) for t in lp.tokens[:-1]])

    # --- chat ---

    def test_chat_completion(self):
        chat = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Hello"}],
            max_tokens=12, temperature=0, seed=3)
        self.assertTrue(chat.id.startswith("chatcmpl-"), chat.id)
        self.assertEqual(chat.object, "chat.completion")
        self.assertEqual(chat.model, MODEL)
        message = chat.choices[0].message
        self.assertEqual(message.role, "assistant")
        self.assertIsInstance(message.content, str)
        self.assertIn(chat.choices[0].finish_reason, ("stop", "length"))
        # Byte-level: the documented template, then greedy decoding from it.
        expected = self.generate("system: Be brief.\nuser: Hello\nassistant:", max_tokens=12)
        self.assertEqual(message.content, expected["text_output"])
        self.assertEqual(chat.usage.completion_tokens, expected["usage"]["completion_tokens"])
        self.assertEqual(chat.usage.total_tokens,
                         chat.usage.prompt_tokens + chat.usage.completion_tokens)

    def test_chat_with_content_parts(self):
        plain = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=8, temperature=0)
        parts = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}],
            max_tokens=8, temperature=0)
        self.assertEqual(parts.choices[0].message.content, plain.choices[0].message.content)

    def test_streamed_chat_adds_up_to_the_plain_one(self):
        messages = [{"role": "user", "content": "Hello"}]
        plain = self.client.chat.completions.create(model=MODEL, messages=messages,
                                                    max_tokens=12, temperature=0)
        stream = self.client.chat.completions.create(model=MODEL, messages=messages,
                                                     max_tokens=12, temperature=0, stream=True,
                                                     stream_options={"include_usage": True})
        text, finish, usage, roles, chunks = "", None, None, [], 0
        for part in stream:
            chunks += 1
            self.assertEqual(part.object, "chat.completion.chunk")
            if part.choices:
                delta = part.choices[0].delta
                text += delta.content or ""
                if delta.role:
                    roles.append(delta.role)
                finish = part.choices[0].finish_reason or finish
            if part.usage:
                self.assertEqual(part.choices, [])
                usage = part.usage
        self.assertGreater(chunks, 2)
        self.assertEqual(roles, ["assistant"])
        self.assertEqual(text, plain.choices[0].message.content)
        self.assertEqual(finish, plain.choices[0].finish_reason)
        self.assertIsNotNone(usage)
        self.assertEqual(usage.completion_tokens, plain.usage.completion_tokens)
        self.assertEqual(usage.prompt_tokens, plain.usage.prompt_tokens)

    def test_chat_logprobs(self):
        chat = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=5,
            temperature=0, logprobs=True, top_logprobs=3)
        content = chat.choices[0].logprobs.content
        self.assertEqual(len(content), 5)
        self.assertEqual("".join(t.token for t in content), chat.choices[0].message.content)
        for t in content:
            self.assertLessEqual(t.logprob, 0)
            self.assertEqual(len(t.top_logprobs), 3)
            self.assertEqual(bytes(t.bytes), t.token.encode())
            # Greedy: the chosen token is the most likely one.
            self.assertEqual(t.top_logprobs[0].token, t.token)

    def test_seed_reproduces_a_sampled_answer(self):
        kwargs = dict(model=MODEL, messages=[{"role": "user", "content": "Once upon"}],
                      max_tokens=16, temperature=1.0, top_p=0.9)
        a = self.client.chat.completions.create(seed=42, **kwargs)
        b = self.client.chat.completions.create(seed=42, **kwargs)
        self.assertEqual(a.choices[0].message.content, b.choices[0].message.content)

    # --- errors ---

    def test_unknown_model_is_not_found(self):
        with self.assertRaises(openai.NotFoundError) as raised:
            self.client.completions.create(model="gpt-9", prompt="x")
        self.assertEqual(raised.exception.status_code, 404)
        self.assertEqual(raised.exception.code, "model_not_found")
        self.assertIn("gpt-9", raised.exception.message)
        with self.assertRaises(openai.NotFoundError):
            self.client.chat.completions.create(model="gpt-9",
                                                messages=[{"role": "user", "content": "x"}])
        with self.assertRaises(openai.NotFoundError):  # a stream fails before it starts
            self.client.chat.completions.create(model="gpt-9", stream=True,
                                                messages=[{"role": "user", "content": "x"}])

    def test_bad_requests_name_their_parameter(self):
        user = [{"role": "user", "content": "x"}]
        cases = [
            ("max_tokens", lambda: self.client.completions.create(model=MODEL, prompt="x", max_tokens=0)),
            ("n", lambda: self.client.chat.completions.create(model=MODEL, messages=user, n=2)),
            ("response_format", lambda: self.client.chat.completions.create(
                model=MODEL, messages=user, response_format={"type": "json_object"})),
            ("temperature", lambda: self.client.completions.create(model=MODEL, prompt="x", temperature=3)),
            ("presence_penalty", lambda: self.client.chat.completions.create(
                model=MODEL, messages=user, presence_penalty=1)),
            ("max_tokens", lambda: self.client.chat.completions.create(
                model=MODEL, messages=user, max_tokens=0, stream=True)),
        ]
        for param, call in cases:
            with self.subTest(param=param):
                with self.assertRaises(openai.BadRequestError) as raised:
                    call()
                self.assertEqual(raised.exception.status_code, 400)
                self.assertEqual(raised.exception.param, param, raised.exception.body)
                self.assertEqual(raised.exception.type, "invalid_request_error")

    # --- asyncio ---

    def test_async_client(self):
        async def run():
            client = openai.AsyncOpenAI(base_url=self.base_url, api_key="unused", max_retries=0,
                                        timeout=60, _strict_response_validation=True)
            try:
                messages = [{"role": "user", "content": "Hello"}]
                plain, stream = await asyncio.gather(
                    client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10,
                                                   temperature=0),
                    client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10,
                                                   temperature=0, stream=True))
                text = ""
                async for part in stream:
                    if part.choices:
                        text += part.choices[0].delta.content or ""
                self.assertEqual(text, plain.choices[0].message.content)
                with self.assertRaises(openai.NotFoundError):
                    await client.completions.create(model="gpt-9", prompt="x")
            finally:
                await client.close()

        asyncio.run(run())


if __name__ == "__main__":
    h.main()
