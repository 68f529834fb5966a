//+------------------------------------------------------------------+
//| WebSocketClient.mqh - RFC 6455 WebSocket client on MQL5 sockets  |
//| mtbridge. No DLL: only the terminal's Socket* functions.         |
//|                                                                  |
//| Non-blocking: call Poll() from OnTimer until it returns          |
//| WS_EVENT_NONE. Reads never wait for data that is not there, so   |
//| the handler never blocks (SocketConnect and sending excepted).   |
//+------------------------------------------------------------------+
#ifndef MTBRIDGE_WEBSOCKETCLIENT_MQH
#define MTBRIDGE_WEBSOCKETCLIENT_MQH

#define WS_STATE_CLOSED      0
#define WS_STATE_CONNECTING  1
#define WS_STATE_OPEN        2
#define WS_STATE_CLOSING     3

#define WS_EVENT_NONE        0
#define WS_EVENT_OPEN        1
#define WS_EVENT_MESSAGE     2
#define WS_EVENT_CLOSED      3

#define WS_OP_CONTINUATION   0
#define WS_OP_TEXT           1
#define WS_OP_BINARY         2
#define WS_OP_CLOSE          8
#define WS_OP_PING           9
#define WS_OP_PONG           10

#define WS_CLOSE_NORMAL          1000
#define WS_CLOSE_GOING_AWAY      1001
#define WS_CLOSE_PROTOCOL_ERROR  1002
#define WS_CLOSE_NO_STATUS       1005
#define WS_CLOSE_ABNORMAL        1006
#define WS_CLOSE_INVALID_DATA    1007
#define WS_CLOSE_POLICY          1008
#define WS_CLOSE_TOO_BIG         1009

#define WS_READ_CHUNK        65536
#define WS_MAX_HANDSHAKE     16384
#define WS_GUID              "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

//+------------------------------------------------------------------+
//| Milliseconds since program start, monotonic.                     |
//+------------------------------------------------------------------+
ulong WsNowMs()
  {
   return GetMicrosecondCount() / 1000;
  }

//+------------------------------------------------------------------+
//| Base64 without line breaks (CRYPT_BASE64's are undocumented).    |
//+------------------------------------------------------------------+
string WsBase64Encode(const uchar &src[], const int len)
  {
   string table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
   string out = "";
   int i = 0;
   while(i < len)
     {
      int b0 = src[i];
      int b1 = (i + 1 < len) ? src[i + 1] : 0;
      int b2 = (i + 2 < len) ? src[i + 2] : 0;
      int n = (b0 << 16) | (b1 << 8) | b2;
      out += ShortToString(StringGetCharacter(table, (n >> 18) & 63));
      out += ShortToString(StringGetCharacter(table, (n >> 12) & 63));
      if(i + 1 < len)
         out += ShortToString(StringGetCharacter(table, (n >> 6) & 63));
      else
         out += "=";
      if(i + 2 < len)
         out += ShortToString(StringGetCharacter(table, n & 63));
      else
         out += "=";
      i += 3;
     }
   return out;
  }

//+------------------------------------------------------------------+
//| UTF-8 bytes of a string, without the terminating NUL.            |
//+------------------------------------------------------------------+
int WsStringToUtf8(const string text, uchar &out[])
  {
   int n = StringToCharArray(text, out, 0, -1, CP_UTF8);
   if(n > 0 && out[n - 1] == 0)
      n--;
   if(n < 0)
      n = 0;
   return n;
  }

//+------------------------------------------------------------------+
//| Incremental UTF-8 validator: fails on the first invalid byte.    |
//+------------------------------------------------------------------+
class CWsUtf8Validator
  {
private:
   int               m_need;
   int               m_lo;
   int               m_hi;
public:
                     CWsUtf8Validator() { Reset(); }
   void              Reset() { m_need = 0; m_lo = 0x80; m_hi = 0xBF; }
   //--- false as soon as the bytes seen so far cannot start a valid sequence
   bool              Feed(const uchar &data[], const int start, const int count)
     {
      for(int i = start; i < start + count; i++)
        {
         int b = data[i];
         if(m_need == 0)
           {
            if(b < 0x80)
               continue;
            if(b >= 0xC2 && b <= 0xDF)
              { m_need = 1; m_lo = 0x80; m_hi = 0xBF; }
            else
               if(b == 0xE0)
                 { m_need = 2; m_lo = 0xA0; m_hi = 0xBF; }
               else
                  if((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
                    { m_need = 2; m_lo = 0x80; m_hi = 0xBF; }
                  else
                     if(b == 0xED)
                       { m_need = 2; m_lo = 0x80; m_hi = 0x9F; }
                     else
                        if(b == 0xF0)
                          { m_need = 3; m_lo = 0x90; m_hi = 0xBF; }
                        else
                           if(b >= 0xF1 && b <= 0xF3)
                             { m_need = 3; m_lo = 0x80; m_hi = 0xBF; }
                           else
                              if(b == 0xF4)
                                { m_need = 3; m_lo = 0x80; m_hi = 0x8F; }
                              else
                                 return false;
           }
         else
           {
            if(b < m_lo || b > m_hi)
               return false;
            m_need--;
            m_lo = 0x80;
            m_hi = 0xBF;
           }
        }
      return true;
     }
   bool              Complete() const { return m_need == 0; }
  };

//+------------------------------------------------------------------+
//| Key and mask material. MQL5 has no documented CSPRNG: a SHA-1    |
//| pool is stirred with every source of variation available.        |
//+------------------------------------------------------------------+
class CWsEntropy
  {
private:
   uchar             m_pool[];
   uchar             m_block[];
   uchar             m_hash[];
   uchar             m_nokey[];
   ulong             m_counter;
   int               m_used;

   void              PutULong(const int at, const ulong v)
     {
      for(int i = 0; i < 8; i++)
         m_block[at + i] = (uchar)((v >> (8 * i)) & 0xFF);
     }
   void              Stir()
     {
      ArrayResize(m_block, 60);
      for(int i = 0; i < 20; i++)
         m_block[i] = m_pool[i];
      m_counter++;
      PutULong(20, m_counter);
      PutULong(28, GetMicrosecondCount());
      PutULong(36, (ulong)GetTickCount() ^ ((ulong)TimeLocal() << 32));
      ulong r = 0;
      for(int i = 0; i < 4; i++)
         r = (r << 15) ^ (ulong)MathRand();
      PutULong(44, r);
      PutULong(52, (ulong)TimeCurrent());
      if(CryptEncode(CRYPT_HASH_SHA1, m_block, m_nokey, m_hash) == 20)
        {
         for(int i = 0; i < 20; i++)
            m_pool[i] = m_hash[i];
        }
      else
        {
         //--- hashing failed: still change the pool so bytes are never repeated verbatim
         for(int i = 0; i < 20; i++)
            m_pool[i] = (uchar)(m_pool[i] ^ m_block[20 + (i % 40)] ^ (uchar)MathRand());
        }
      m_used = 0;
     }
public:
                     CWsEntropy()
     {
      ArrayResize(m_pool, 20);
      ArrayInitialize(m_pool, 0);
      m_counter = 0;
      m_used = 20;
      MathSrand((uint)(GetTickCount() ^ (uint)GetMicrosecondCount() ^ (uint)TimeLocal()));
      Stir();
     }
   void              Fill(uchar &out[], const int start, const int count)
     {
      for(int i = 0; i < count; i++)
        {
         //--- use only half of each digest so the pool itself is never exposed
         if(m_used >= 10)
            Stir();
         out[start + i] = m_pool[m_used];
         m_used++;
        }
     }
  };

//+------------------------------------------------------------------+
//| Exponential backoff with jitter ("equal jitter").                |
//+------------------------------------------------------------------+
class CWsBackoff
  {
private:
   uint              m_base_ms;
   uint              m_max_ms;
   int               m_attempt;
public:
                     CWsBackoff() { m_base_ms = 1000; m_max_ms = 60000; m_attempt = 0; }
   void              Configure(const uint base_ms, const uint max_ms)
     {
      m_base_ms = (base_ms < 1) ? 1 : base_ms;
      m_max_ms = (max_ms < m_base_ms) ? m_base_ms : max_ms;
     }
   void              Reset() { m_attempt = 0; }
   int               Attempt() const { return m_attempt; }
   //--- delay before the next attempt: half of the ceiling plus a random part of the other half
   uint              Next()
     {
      ulong ceiling = m_base_ms;
      for(int i = 0; i < m_attempt && ceiling < m_max_ms; i++)
         ceiling *= 2;
      if(ceiling > m_max_ms)
         ceiling = m_max_ms;
      if(m_attempt < 30)
         m_attempt++;
      ulong half = ceiling / 2;
      ulong r = ((ulong)MathRand() << 15) | (ulong)MathRand();
      ulong jitter = (half > 0) ? (r % (half + 1)) : 0;
      return (uint)(ceiling - half + jitter);
     }
  };

//+------------------------------------------------------------------+
//| The client.                                                      |
//+------------------------------------------------------------------+
class CWebSocketClient
  {
private:
   //--- endpoint
   string            m_url;
   string            m_host;
   uint              m_port;
   string            m_resource;
   bool              m_secure;
   string            m_protocols;
   string            m_extra_headers;
   string            m_protocol;
   //--- connection
   int               m_socket;
   int               m_state;
   string            m_accept;
   ulong             m_deadline;
   bool              m_close_sent;
   bool              m_close_received;
   bool              m_discard;
   bool              m_eof;
   int               m_close_code;
   string            m_close_reason;
   bool              m_closed_event;
   string            m_error;
   ulong             m_opened_at;
   //--- receive buffer: bytes [m_rx_pos, m_rx_len) are not parsed yet
   uchar             m_rx[];
   int               m_rx_len;
   int               m_rx_pos;
   uchar             m_tmp[];
   int               m_frame_checked;
   //--- message being assembled
   uchar             m_msg[];
   int               m_msg_len;
   int               m_msg_opcode;
   int               m_ready_opcode;
   CWsUtf8Validator  m_utf8;
   //--- sending
   uchar             m_tx[];
   uchar             m_mask[];
   CWsEntropy        m_entropy;
   //--- settings
   ulong             m_max_message;
   uint              m_connect_timeout;
   uint              m_send_timeout;
   uint              m_handshake_timeout;
   uint              m_close_timeout;
   int               m_read_budget;
   //--- reconnect
   bool              m_reconnect;
   CWsBackoff        m_backoff;
   ulong             m_next_attempt;
   uint              m_stable_ms;

   //--- a frame header or payload may be incomplete: keep unparsed bytes, drop parsed ones
   void              Compact()
     {
      if(m_rx_pos == 0)
         return;
      if(m_rx_pos >= m_rx_len)
        {
         m_rx_pos = 0;
         m_rx_len = 0;
         return;
        }
      if(m_rx_pos < 65536 || m_rx_pos * 2 < m_rx_len)
         return;
      int n = m_rx_len - m_rx_pos;
      for(int i = 0; i < n; i++)
         m_rx[i] = m_rx[m_rx_pos + i];
      m_rx_pos = 0;
      m_rx_len = n;
     }

   void              Append(const uchar &src[], const int count)
     {
      Compact();
      int need = m_rx_len + count;
      if(ArraySize(m_rx) < need)
         ArrayResize(m_rx, need, need);
      ArrayCopy(m_rx, src, m_rx_len, 0, count);
      m_rx_len = need;
     }

   //--- reads what the socket has now; false when the connection is gone
   bool              ReadAvailable()
     {
      int total = 0;
      while(total < m_read_budget)
        {
         int got = 0;
         if(m_secure)
           {
            ResetLastError();
            got = SocketTlsReadAvailable(m_socket, m_tmp, WS_READ_CHUNK);
            if(got < 0)
               return false;
            if(got == 0)
               break;
           }
         else
           {
            uint n = SocketIsReadable(m_socket);
            if(n == 0)
              {
               if(!SocketIsConnected(m_socket))
                  return false;
               break;
              }
            if(n > WS_READ_CHUNK)
               n = WS_READ_CHUNK;
            ResetLastError();
            //--- 1 ms: SocketIsReadable may report a byte that is not there
            got = SocketRead(m_socket, m_tmp, n, 1);
            if(got <= 0)
              {
               if(!SocketIsConnected(m_socket))
                  return false;
               break;
              }
           }
         if(!m_discard)
            Append(m_tmp, got);
         total += got;
        }
      return true;
     }

   bool              RawSend(const uchar &data[], const int len)
     {
      int sent = m_secure ? SocketTlsSend(m_socket, data, len) : SocketSend(m_socket, data, len);
      if(sent != len)
        {
         m_error = "send failed, error " + IntegerToString(GetLastError());
         return false;
        }
      return true;
     }

   bool              SendFrame(const int opcode, const uchar &data[], const int offset, const int len)
     {
      if(m_socket == INVALID_HANDLE)
         return false;
      int hlen = 6;
      if(len > 65535)
         hlen = 14;
      else
         if(len > 125)
            hlen = 8;
      if(ArraySize(m_tx) < hlen + len)
         ArrayResize(m_tx, hlen + len);
      m_tx[0] = (uchar)(0x80 | opcode);
      if(len > 65535)
        {
         m_tx[1] = (uchar)(0x80 | 127);
         ulong l = (ulong)len;
         for(int i = 0; i < 8; i++)
            m_tx[2 + i] = (uchar)((l >> (8 * (7 - i))) & 0xFF);
        }
      else
         if(len > 125)
           {
            m_tx[1] = (uchar)(0x80 | 126);
            m_tx[2] = (uchar)((len >> 8) & 0xFF);
            m_tx[3] = (uchar)(len & 0xFF);
           }
         else
            m_tx[1] = (uchar)(0x80 | len);
      m_entropy.Fill(m_mask, 0, 4);
      for(int i = 0; i < 4; i++)
         m_tx[hlen - 4 + i] = m_mask[i];
      for(int i = 0; i < len; i++)
         m_tx[hlen + i] = (uchar)(data[offset + i] ^ m_mask[i & 3]);
      if(!RawSend(m_tx, hlen + len))
        {
         Drop(WS_CLOSE_ABNORMAL);
         return false;
        }
      return true;
     }

   void              SendClose(const int code, const string reason)
     {
      uchar payload[];
      int n = 0;
      if(code > 0)
        {
         uchar text[];
         int tl = WsStringToUtf8(reason, text);
         if(tl > 123)
            tl = 123;
         ArrayResize(payload, 2 + tl);
         payload[0] = (uchar)((code >> 8) & 0xFF);
         payload[1] = (uchar)(code & 0xFF);
         for(int i = 0; i < tl; i++)
            payload[2 + i] = text[i];
         n = 2 + tl;
        }
      m_close_sent = true;
      SendFrame(WS_OP_CLOSE, payload, 0, n);
     }

   //--- closes the TCP connection at once and reports WS_EVENT_CLOSED
   void              Drop(const int code)
     {
      if(m_socket != INVALID_HANDLE)
         SocketClose(m_socket);
      m_socket = INVALID_HANDLE;
      if(!m_close_received)
         m_close_code = code;
      bool was_live = (m_state != WS_STATE_CLOSED);
      m_state = WS_STATE_CLOSED;
      m_closed_event = was_live;
      m_msg_opcode = 0;
      m_msg_len = 0;
      m_rx_len = 0;
      m_rx_pos = 0;
      if(m_reconnect)
        {
         if(m_opened_at > 0 && WsNowMs() - m_opened_at >= m_stable_ms)
            m_backoff.Reset();
         m_next_attempt = WsNowMs() + m_backoff.Next();
        }
      m_opened_at = 0;
     }

   //--- fail the connection (RFC 6455 7.1.7): send a close with the code, wait for the server to close
   int               Fail(const int code, const string why)
     {
      m_error = why;
      if(m_state == WS_STATE_OPEN)
        {
         m_close_code = code;
         m_close_reason = why;
         SendClose(code, why);
         if(m_state == WS_STATE_CLOSED)
            return WS_EVENT_NONE;
         m_state = WS_STATE_CLOSING;
         m_deadline = WsNowMs() + m_close_timeout;
         m_discard = true;
         m_rx_pos = m_rx_len;
        }
      else
         Drop(code);
      return WS_EVENT_NONE;
     }

   bool              IsValidCloseCode(const int code)
     {
      if(code >= 1000 && code <= 1003)
         return true;
      if(code >= 1007 && code <= 1014)
         return true;
      if(code >= 3000 && code <= 4999)
         return true;
      return false;
     }

   //--- case-insensitive header lookup in the raw response head
   string            HeaderValue(const string &lines[], const int count, const string name)
     {
      string want = name;
      StringToLower(want);
      for(int i = 1; i < count; i++)
        {
         int colon = StringFind(lines[i], ":");
         if(colon <= 0)
            continue;
         string key = StringSubstr(lines[i], 0, colon);
         StringTrimRight(key);
         StringToLower(key);
         if(key == want)
           {
            string v = StringSubstr(lines[i], colon + 1);
            StringTrimLeft(v);
            StringTrimRight(v);
            return v;
           }
        }
      return "";
     }

   bool              HasToken(const string value, const string token)
     {
      string parts[];
      int n = StringSplit(value, ',', parts);
      for(int i = 0; i < n; i++)
        {
         string p = parts[i];
         StringTrimLeft(p);
         StringTrimRight(p);
         StringToLower(p);
         if(p == token)
            return true;
        }
      return false;
     }

   int               ParseHandshake()
     {
      int end = -1;
      for(int i = m_rx_pos; i + 3 < m_rx_len; i++)
        {
         if(m_rx[i] == 13 && m_rx[i + 1] == 10 && m_rx[i + 2] == 13 && m_rx[i + 3] == 10)
           {
            end = i;
            break;
           }
        }
      if(end < 0)
        {
         if(m_rx_len - m_rx_pos > WS_MAX_HANDSHAKE)
            return Fail(WS_CLOSE_PROTOCOL_ERROR, "handshake response too large");
         return WS_EVENT_NONE;
        }
      for(int i = m_rx_pos; i < end; i++)
        {
         if(m_rx[i] == 0)
            return Fail(WS_CLOSE_PROTOCOL_ERROR, "NUL byte in handshake response");
        }
      string head = CharArrayToString(m_rx, m_rx_pos, end - m_rx_pos, CP_UTF8);
      m_rx_pos = end + 4;
      string lines[];
      StringReplace(head, "\r\n", "\n");
      int count = StringSplit(head, '\n', lines);
      if(count < 1)
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "empty handshake response");
      string status[];
      int sc = StringSplit(lines[0], ' ', status);
      if(sc < 2 || StringFind(status[0], "HTTP/1.1") != 0 || status[1] != "101")
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "handshake refused: " + lines[0]);
      string upgrade = HeaderValue(lines, count, "Upgrade");
      StringToLower(upgrade);
      if(upgrade != "websocket")
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "handshake: missing Upgrade: websocket");
      if(!HasToken(HeaderValue(lines, count, "Connection"), "upgrade"))
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "handshake: missing Connection: Upgrade");
      if(HeaderValue(lines, count, "Sec-WebSocket-Accept") != m_accept)
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "handshake: wrong Sec-WebSocket-Accept");
      if(HeaderValue(lines, count, "Sec-WebSocket-Extensions") != "")
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "handshake: extension not offered");
      m_protocol = HeaderValue(lines, count, "Sec-WebSocket-Protocol");
      if(m_protocol != "" && !HasToken(m_protocols, m_protocol))
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "handshake: subprotocol not offered");
      m_state = WS_STATE_OPEN;
      m_opened_at = WsNowMs();
      return WS_EVENT_OPEN;
     }

   //--- parses one frame from the buffer; returns an event, or NONE when more bytes are needed
   int               ParseFrame(bool &progress)
     {
      progress = false;
      int avail = m_rx_len - m_rx_pos;
      if(avail < 2)
         return WS_EVENT_NONE;
      int p = m_rx_pos;
      int b0 = m_rx[p];
      int b1 = m_rx[p + 1];
      bool fin = (b0 & 0x80) != 0;
      int op = b0 & 0x0F;
      if((b0 & 0x70) != 0)
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "reserved bits set");
      if(op != WS_OP_CONTINUATION && op != WS_OP_TEXT && op != WS_OP_BINARY &&
         op != WS_OP_CLOSE && op != WS_OP_PING && op != WS_OP_PONG)
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "unknown opcode");
      if((b1 & 0x80) != 0)
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "masked frame from server");
      ulong plen = (ulong)(b1 & 0x7F);
      int hlen = 2;
      if(op >= 8)
        {
         if(!fin)
            return Fail(WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame");
         if(plen > 125)
            return Fail(WS_CLOSE_PROTOCOL_ERROR, "control frame too long");
        }
      if(plen == 126)
        {
         if(avail < 4)
            return WS_EVENT_NONE;
         plen = ((ulong)m_rx[p + 2] << 8) | (ulong)m_rx[p + 3];
         hlen = 4;
        }
      else
         if(plen == 127)
           {
            if(avail < 10)
               return WS_EVENT_NONE;
            plen = 0;
            for(int i = 0; i < 8; i++)
               plen = (plen << 8) | (ulong)m_rx[p + 2 + i];
            if((plen >> 63) != 0)
               return Fail(WS_CLOSE_PROTOCOL_ERROR, "invalid payload length");
            hlen = 10;
           }
      if(op == WS_OP_CONTINUATION && m_msg_opcode == 0)
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "continuation without a message");
      if((op == WS_OP_TEXT || op == WS_OP_BINARY) && m_msg_opcode != 0)
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "new message inside a fragmented message");
      if(op < 8)
        {
         ulong so_far = (op == WS_OP_CONTINUATION) ? (ulong)m_msg_len : 0;
         if(so_far + plen > m_max_message)
            return Fail(WS_CLOSE_TOO_BIG, "message too big");
        }
      //--- validate text as it arrives, so invalid UTF-8 fails fast
      bool text = (op == WS_OP_TEXT) || (op == WS_OP_CONTINUATION && m_msg_opcode == WS_OP_TEXT);
      ulong have = (ulong)(avail - hlen);
      if(have > plen)
         have = plen;
      if(text && (int)have > m_frame_checked)
        {
         if(op == WS_OP_TEXT && m_frame_checked == 0)
            m_utf8.Reset();
         if(!m_utf8.Feed(m_rx, p + hlen + m_frame_checked, (int)have - m_frame_checked))
            return Fail(WS_CLOSE_INVALID_DATA, "invalid UTF-8 in text message");
         m_frame_checked = (int)have;
        }
      if(have < plen)
         return WS_EVENT_NONE;
      //--- the frame is complete
      int start = p + hlen;
      int len = (int)plen;
      m_rx_pos = start + len;
      m_frame_checked = 0;
      progress = true;
      if(op == WS_OP_PING)
        {
         if(!m_close_sent)
            SendFrame(WS_OP_PONG, m_rx, start, len);
         return WS_EVENT_NONE;
        }
      if(op == WS_OP_PONG)
         return WS_EVENT_NONE;
      if(op == WS_OP_CLOSE)
         return OnCloseFrame(start, len);
      //--- data frame
      if(op != WS_OP_CONTINUATION)
        {
         m_msg_opcode = op;
         m_msg_len = 0;
         if(op == WS_OP_TEXT && len == 0)
            m_utf8.Reset();
        }
      if(ArraySize(m_msg) < m_msg_len + len)
         ArrayResize(m_msg, m_msg_len + len, m_msg_len + len);
      if(len > 0)
         ArrayCopy(m_msg, m_rx, m_msg_len, start, len);
      m_msg_len += len;
      if(!fin)
         return WS_EVENT_NONE;
      int opcode = m_msg_opcode;
      m_msg_opcode = 0;
      if(opcode == WS_OP_TEXT && !m_utf8.Complete())
         return Fail(WS_CLOSE_INVALID_DATA, "truncated UTF-8 sequence in text message");
      if(m_close_sent)
         return WS_EVENT_NONE;
      m_ready_opcode = opcode;
      return WS_EVENT_MESSAGE;
     }

   int               OnCloseFrame(const int start, const int len)
     {
      if(len == 1)
         return Fail(WS_CLOSE_PROTOCOL_ERROR, "close frame with a 1-byte payload");
      int code = WS_CLOSE_NO_STATUS;
      string reason = "";
      if(len >= 2)
        {
         code = (m_rx[start] << 8) | m_rx[start + 1];
         if(!IsValidCloseCode(code))
            return Fail(WS_CLOSE_PROTOCOL_ERROR, "invalid close code");
         CWsUtf8Validator reason_check;
         if(!reason_check.Feed(m_rx, start + 2, len - 2) || !reason_check.Complete())
            return Fail(WS_CLOSE_INVALID_DATA, "invalid UTF-8 in close reason");
         if(len > 2)
            reason = CharArrayToString(m_rx, start + 2, len - 2, CP_UTF8);
        }
      bool echo = !m_close_sent;
      m_close_received = true;
      m_close_code = code;
      m_close_reason = reason;
      if(echo)
         SendClose(code == WS_CLOSE_NO_STATUS ? 0 : code, "");
      if(m_state != WS_STATE_CLOSED)
        {
         m_state = WS_STATE_CLOSING;
         m_deadline = WsNowMs() + m_close_timeout;
         m_discard = true;
        }
      return WS_EVENT_NONE;
     }

   bool              ParseUrl(const string url)
     {
      string rest;
      if(StringFind(url, "ws://") == 0)
        {
         m_secure = false;
         m_port = 80;
         rest = StringSubstr(url, 5);
        }
      else
         if(StringFind(url, "wss://") == 0)
           {
            m_secure = true;
            m_port = 443;
            rest = StringSubstr(url, 6);
           }
         else
            return false;
      int slash = StringFind(rest, "/");
      int question = StringFind(rest, "?");
      int cut = slash;
      if(cut < 0 || (question >= 0 && question < cut))
         cut = question;
      string authority = (cut < 0) ? rest : StringSubstr(rest, 0, cut);
      m_resource = (cut < 0) ? "/" : StringSubstr(rest, cut);
      if(StringFind(m_resource, "?") == 0)
         m_resource = "/" + m_resource;
      if(StringFind(authority, "@") >= 0 || authority == "")
         return false;
      int colon = StringFind(authority, ":");
      if(StringFind(authority, "[") == 0)
        {
         int close = StringFind(authority, "]");
         if(close < 0)
            return false;
         m_host = StringSubstr(authority, 1, close - 1);
         colon = (StringFind(authority, ":", close) == close + 1) ? close + 1 : -1;
        }
      else
         m_host = (colon < 0) ? authority : StringSubstr(authority, 0, colon);
      if(colon >= 0)
        {
         string ps = StringSubstr(authority, colon + 1);
         long port = StringToInteger(ps);
         if(port < 1 || port > 65535 || IntegerToString(port) != ps)
            return false;
         m_port = (uint)port;
        }
      return m_host != "";
     }

   bool              StartConnection()
     {
      m_error = "";
      m_protocol = "";
      m_close_sent = false;
      m_close_received = false;
      m_discard = false;
      m_eof = false;
      m_close_code = 0;
      m_close_reason = "";
      m_rx_len = 0;
      m_rx_pos = 0;
      m_msg_len = 0;
      m_msg_opcode = 0;
      m_frame_checked = 0;
      m_socket = SocketCreate();
      if(m_socket == INVALID_HANDLE)
        {
         m_error = "SocketCreate failed, error " + IntegerToString(GetLastError());
         return false;
        }
      SocketTimeouts(m_socket, m_send_timeout, m_send_timeout);
      ResetLastError();
      if(!SocketConnect(m_socket, m_host, m_port, m_connect_timeout))
        {
         m_error = "cannot connect to " + m_host + ":" + IntegerToString(m_port) + ", error " + IntegerToString(GetLastError());
         SocketClose(m_socket);
         m_socket = INVALID_HANDLE;
         return false;
        }
      if(m_secure && m_port != 443)
        {
         ResetLastError();
         if(!SocketTlsHandshake(m_socket, m_host))
           {
            m_error = "TLS handshake with " + m_host + " failed, error " + IntegerToString(GetLastError());
            SocketClose(m_socket);
            m_socket = INVALID_HANDLE;
            return false;
           }
        }
      //--- opening handshake
      uchar nonce[];
      ArrayResize(nonce, 16);
      m_entropy.Fill(nonce, 0, 16);
      string key = WsBase64Encode(nonce, 16);
      uchar src[];
      uchar digest[];
      uchar nokey[];
      int sl = WsStringToUtf8(key + WS_GUID, src);
      ArrayResize(src, sl);
      if(CryptEncode(CRYPT_HASH_SHA1, src, nokey, digest) != 20)
        {
         m_error = "SHA-1 unavailable, error " + IntegerToString(GetLastError());
         SocketClose(m_socket);
         m_socket = INVALID_HANDLE;
         return false;
        }
      m_accept = WsBase64Encode(digest, 20);
      string host_header = m_host;
      if(StringFind(m_host, ":") >= 0)
         host_header = "[" + m_host + "]";
      if((m_secure && m_port != 443) || (!m_secure && m_port != 80))
         host_header += ":" + IntegerToString(m_port);
      string req = "GET " + m_resource + " HTTP/1.1\r\n" +
                   "Host: " + host_header + "\r\n" +
                   "Upgrade: websocket\r\n" +
                   "Connection: Upgrade\r\n" +
                   "Sec-WebSocket-Key: " + key + "\r\n" +
                   "Sec-WebSocket-Version: 13\r\n";
      if(m_protocols != "")
         req += "Sec-WebSocket-Protocol: " + m_protocols + "\r\n";
      req += m_extra_headers + "\r\n";
      uchar bytes[];
      int n = WsStringToUtf8(req, bytes);
      m_state = WS_STATE_CONNECTING;
      m_deadline = WsNowMs() + m_handshake_timeout;
      if(!RawSend(bytes, n))
        {
         Drop(WS_CLOSE_ABNORMAL);
         m_closed_event = false;
         return false;
        }
      return true;
     }

public:
                     CWebSocketClient()
     {
      m_socket = INVALID_HANDLE;
      m_state = WS_STATE_CLOSED;
      m_port = 0;
      m_secure = false;
      m_rx_len = 0;
      m_rx_pos = 0;
      m_msg_len = 0;
      m_msg_opcode = 0;
      m_ready_opcode = 0;
      m_frame_checked = 0;
      m_close_code = 0;
      m_closed_event = false;
      m_close_sent = false;
      m_close_received = false;
      m_discard = false;
      m_eof = false;
      m_deadline = 0;
      m_opened_at = 0;
      m_max_message = 4 * 1024 * 1024;
      m_connect_timeout = 5000;
      m_send_timeout = 10000;
      m_handshake_timeout = 10000;
      m_close_timeout = 3000;
      m_read_budget = 4 * 1024 * 1024;
      m_reconnect = false;
      m_next_attempt = 0;
      m_stable_ms = 30000;
      ArrayResize(m_tmp, WS_READ_CHUNK);
      ArrayResize(m_mask, 4);
     }
   virtual          ~CWebSocketClient()
     {
      if(m_socket != INVALID_HANDLE)
         SocketClose(m_socket);
     }

   //--- settings (before Open)
   void              SetMaxMessageSize(const ulong bytes) { m_max_message = bytes; }
   void              SetTimeouts(const uint connect_ms, const uint send_ms, const uint handshake_ms, const uint close_ms)
     {
      m_connect_timeout = connect_ms;
      m_send_timeout = send_ms;
      m_handshake_timeout = handshake_ms;
      m_close_timeout = close_ms;
     }
   void              SetReadBudget(const int bytes) { m_read_budget = (bytes < WS_READ_CHUNK) ? WS_READ_CHUNK : bytes; }
   //--- after a drop, Poll() reconnects on its own with exponential backoff and jitter
   void              SetReconnect(const bool enabled, const uint base_ms, const uint max_ms)
     {
      m_reconnect = enabled;
      m_backoff.Configure(base_ms, max_ms);
     }
   void              SetStablePeriod(const uint ms) { m_stable_ms = ms; }

   //--- starts connecting (TCP and TLS are synchronous, the opening handshake completes in Poll)
   bool              Open(const string url, const string protocols, const string extra_headers)
     {
      if(m_socket != INVALID_HANDLE)
         Drop(WS_CLOSE_ABNORMAL);
      m_closed_event = false;
      m_url = url;
      m_protocols = protocols;
      m_extra_headers = extra_headers;
      if(!ParseUrl(url))
        {
         m_error = "invalid WebSocket URL";
         m_reconnect = false;
         return false;
        }
      if(StartConnection())
         return true;
      if(m_reconnect)
         m_next_attempt = WsNowMs() + m_backoff.Next();
      return false;
     }

   //--- drives the connection; returns one event per call (WS_EVENT_NONE: nothing more for now)
   int               Poll()
     {
      if(m_closed_event)
        {
         m_closed_event = false;
         return WS_EVENT_CLOSED;
        }
      if(m_state == WS_STATE_CLOSED)
        {
         if(m_reconnect && m_url != "" && WsNowMs() >= m_next_attempt)
           {
            if(!StartConnection())
               m_next_attempt = WsNowMs() + m_backoff.Next();
           }
         return WS_EVENT_NONE;
        }
      for(int round = 0; round < 2; round++)
        {
         if(m_state == WS_STATE_CONNECTING)
           {
            int hs = ParseHandshake();
            if(hs != WS_EVENT_NONE)
               return hs;
           }
         if(m_state == WS_STATE_OPEN || (m_state == WS_STATE_CLOSING && !m_discard))
           {
            bool progress = true;
            while(progress)
              {
               int ev = ParseFrame(progress);
               if(ev != WS_EVENT_NONE)
                  return ev;
               if(m_state == WS_STATE_CLOSED || m_discard)
                  break;
              }
           }
         if(m_state == WS_STATE_CLOSED)
            break;
         if(round == 0 && !m_eof && !ReadAvailable())
            m_eof = true;
        }
      //--- the peer closed the TCP connection (normal after a close handshake) and
      //--- everything it sent before has been parsed
      if(m_eof && m_state != WS_STATE_CLOSED)
        {
         if(m_state == WS_STATE_CONNECTING && m_error == "")
            m_error = "connection closed during the opening handshake";
         Drop(m_close_received ? m_close_code : WS_CLOSE_ABNORMAL);
        }
      if(m_state == WS_STATE_CONNECTING && WsNowMs() > m_deadline)
        {
         m_error = "opening handshake timed out";
         Drop(WS_CLOSE_ABNORMAL);
        }
      if(m_state == WS_STATE_CLOSING && WsNowMs() > m_deadline)
         Drop(m_close_received ? m_close_code : WS_CLOSE_ABNORMAL);
      if(m_closed_event)
        {
         m_closed_event = false;
         return WS_EVENT_CLOSED;
        }
      return WS_EVENT_NONE;
     }

   //--- the message of the last WS_EVENT_MESSAGE, valid until the next Poll()
   int               MessageLength() const { return m_msg_len; }
   bool              MessageIsText() const { return m_ready_opcode == WS_OP_TEXT; }
   int               MessageOpcode() const { return m_ready_opcode; }
   int               GetMessage(uchar &out[])
     {
      if(ArraySize(out) < m_msg_len)
         ArrayResize(out, m_msg_len);
      if(m_msg_len > 0)
         ArrayCopy(out, m_msg, 0, 0, m_msg_len);
      return m_msg_len;
     }
   //--- text up to the first U+0000 (MQL5 strings cannot hold NUL)
   string            MessageText() { return CharArrayToString(m_msg, 0, m_msg_len, CP_UTF8); }

   bool              SendText(const string text)
     {
      uchar bytes[];
      int n = WsStringToUtf8(text, bytes);
      return SendBytes(WS_OP_TEXT, bytes, n);
     }
   bool              SendBytes(const int opcode, const uchar &data[], const int len)
     {
      if(m_state != WS_STATE_OPEN || m_close_sent)
         return false;
      if(opcode != WS_OP_TEXT && opcode != WS_OP_BINARY)
         return false;
      return SendFrame(opcode, data, 0, len);
     }
   //--- echoes the last message with its own opcode
   bool              SendMessageBack() { return (m_state == WS_STATE_OPEN && !m_close_sent) ? SendFrame(m_ready_opcode, m_msg, 0, m_msg_len) : false; }
   bool              Ping(const uchar &data[], const int len)
     {
      if(m_state != WS_STATE_OPEN || len > 125)
         return false;
      return SendFrame(WS_OP_PING, data, 0, len);
     }
   //--- starts the closing handshake; WS_EVENT_CLOSED follows from Poll()
   void              Close(const int code, const string reason)
     {
      if(m_state == WS_STATE_OPEN)
        {
         SendClose(code, reason);
         if(m_state != WS_STATE_CLOSED)
           {
            m_state = WS_STATE_CLOSING;
            m_deadline = WsNowMs() + m_close_timeout;
           }
        }
      else
         if(m_state == WS_STATE_CONNECTING)
            Drop(WS_CLOSE_ABNORMAL);
     }
   //--- for OnDeinit: no reconnect, a best-effort close frame, the socket closed now
   void              Shutdown(const int code)
     {
      m_reconnect = false;
      if(m_state == WS_STATE_OPEN && !m_close_sent)
         SendClose(code, "");
      if(m_socket != INVALID_HANDLE)
         Drop(code);
      m_closed_event = false;
     }
   void              StopReconnecting() { m_reconnect = false; }
   //--- the next automatic attempt waits at least ms (for example a hub's "reconnect after")
   void              DelayNextAttempt(const uint ms)
     {
      ulong at = WsNowMs() + ms;
      if(at > m_next_attempt)
         m_next_attempt = at;
     }

   int               State() const { return m_state; }
   bool              IsOpen() const { return m_state == WS_STATE_OPEN; }
   string            Protocol() const { return m_protocol; }
   int               CloseCode() const { return m_close_code; }
   string            CloseReason() const { return m_close_reason; }
   bool              CloseReceived() const { return m_close_received; }
   string            ErrorText() const { return m_error; }
   string            Host() const { return m_host; }
   ulong             NextAttemptInMs() const { return (m_next_attempt > WsNowMs()) ? m_next_attempt - WsNowMs() : 0; }
   int               ReconnectAttempt() const { return m_backoff.Attempt(); }
  };

#endif // MTBRIDGE_WEBSOCKETCLIENT_MQH
