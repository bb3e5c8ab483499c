import OpenAI from 'openai';
const client = new OpenAI({ baseURL: `http://127.0.0.1:${process.argv[2]}/v1`, apiKey: 'unused' });
const models = await client.models.list();
console.log('models:', models.data.map(m => m.id));
const c = await client.completions.create({ model: 'demo', prompt: 'The supervisor', max_tokens: 20, temperature: 0, stop: ['queue'] });
console.log('completion:', JSON.stringify(c.choices[0].text), c.choices[0].finish_reason, c.usage);
const chat = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }], max_tokens: 12, temperature: 0, seed: 3 });
console.log('chat:', JSON.stringify(chat.choices[0].message), chat.choices[0].finish_reason);
const stream = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'Hello' }], max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
let text = '', usage = null, finish = null;
for await (const part of stream) { if (part.choices[0]) { text += part.choices[0].delta.content ?? ''; finish = part.choices[0].finish_reason ?? finish; } if (part.usage) usage = part.usage; }
console.log('chat stream:', JSON.stringify(text), finish, usage);
const cs = await client.completions.create({ model: 'demo', prompt: 'The supervisor', max_tokens: 20, temperature: 0, stream: true });
let t2 = ''; for await (const part of cs) t2 += part.choices[0]?.text ?? '';
console.log('completion stream:', JSON.stringify(t2));
try { await client.completions.create({ model: 'gpt-9', prompt: 'x' }); } catch (e) { console.log('error:', e.status, e.message); }
