// The app's one chat client, on the server named in config.js.
const { createChatClient } = require('./lib/chat-client.js');
const config = require('./config.js');

let client = null;

function chatClient() {
  if (!client) client = createChatClient({ wx, baseUrl: config.serverUrl });
  return client;
}

module.exports = { chatClient, config };
