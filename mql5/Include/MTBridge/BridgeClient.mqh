//+------------------------------------------------------------------+
//| BridgeClient.mqh - the mtbridge protocol v1 (docs/protocol.md)   |
//| for an EA: auth in the first message, subscriptions recovered by |
//| offset, app heartbeats, signal.ack, a persistent trade-event     |
//| outbox resent until acknowledged, and a persistent journal of    |
//| handled signal ids so a replayed signal is never executed twice. |
//|                                                                  |
//| Files (FILE_COMMON, so they outlive the terminal and the EA):    |
//|   MTBridge\<login>-<magic>\outbox.jnl   "+<event json>" / "-<id>" |
//|   MTBridge\<login>-<magic>\signals.jnl  "<id> <state> <unix s> <order>" |
//|   MTBridge\<login>-<magic>\state.txt    offsets, epochs, pauses  |
//+------------------------------------------------------------------+
#ifndef MTBRIDGE_BRIDGECLIENT_MQH
#define MTBRIDGE_BRIDGECLIENT_MQH

#include "WebSocketClient.mqh"
#include "Json.mqh"

#define MTB_PROTOCOL           "mtbridge.v1.json"
#define MTB_MAX_IN_FLIGHT      32
#define MTB_RESEND_MS          30000
#define MTB_HEARTBEAT_MS       20000
#define MTB_HEARTBEAT_DEAD_MS  50000
#define MTB_SIGNAL_KEEP_SEC    (8 * 24 * 3600)

//+------------------------------------------------------------------+
//| File helpers (binary files holding UTF-8 lines).                 |
//+------------------------------------------------------------------+
int MtbReadLines(const string name, string &lines[])
  {
   ArrayResize(lines, 0);
   if(!FileIsExist(name, FILE_COMMON))
      return 0;
   int h = FileOpen(name, FILE_READ | FILE_BIN | FILE_COMMON);
   if(h == INVALID_HANDLE)
      return -1;
   uchar raw[];
   int total = (int)FileReadArray(h, raw);
   FileClose(h);
   int count = 0;
   int start = 0;
   for(int i = 0; i < total; i++)
     {
      if(raw[i] != 10)
         continue;
      if(i > start)
        {
         ArrayResize(lines, count + 1, 64);
         lines[count] = CharArrayToString(raw, start, i - start, CP_UTF8);
         count++;
        }
      start = i + 1;
     }
   //--- a last line without its newline was cut by a crash: ignore it
   return count;
  }

bool MtbWriteBytes(const int h, const string line)
  {
   uchar bytes[];
   int n = StringToCharArray(line, bytes, 0, -1, CP_UTF8);
   if(n <= 0)
      return false;
   bytes[n - 1] = 10;
   return FileWriteArray(h, bytes, 0, n) == (uint)n;
  }

//--- appends one line and flushes it to disk
bool MtbAppendLine(const string name, const string line)
  {
   int h = FileOpen(name, FILE_READ | FILE_WRITE | FILE_BIN | FILE_COMMON);
   if(h == INVALID_HANDLE)
      return false;
   FileSeek(h, 0, SEEK_END);
   bool ok = MtbWriteBytes(h, line);
   FileFlush(h);
   FileClose(h);
   return ok;
  }

//--- replaces a file atomically (write a temporary file, then rename it over the old one)
bool MtbWriteLines(const string name, const string &lines[], const int count)
  {
   string tmp = name + ".tmp";
   int h = FileOpen(tmp, FILE_WRITE | FILE_BIN | FILE_COMMON);
   if(h == INVALID_HANDLE)
      return false;
   bool ok = true;
   for(int i = 0; i < count && ok; i++)
      ok = MtbWriteBytes(h, lines[i]);
   FileFlush(h);
   FileClose(h);
   if(!ok)
      return false;
   return FileMove(tmp, FILE_COMMON, name, FILE_COMMON | FILE_REWRITE);
  }

//+------------------------------------------------------------------+
//| Name-based UUID (SHA-1, version 5 layout): the same trade fact   |
//| always gets the same event id, so re-reporting it is harmless.   |
//+------------------------------------------------------------------+
string MtbUuidFromName(const string name)
  {
   uchar src[];
   uchar digest[];
   uchar nokey[];
   int n = StringToCharArray("mtbridge-event:" + name, src, 0, -1, CP_UTF8);
   if(n > 0 && src[n - 1] == 0)
      n--;
   ArrayResize(src, n);
   if(CryptEncode(CRYPT_HASH_SHA1, src, nokey, digest) != 20)
      return "";
   digest[6] = (uchar)((digest[6] & 0x0F) | 0x50);
   digest[8] = (uchar)((digest[8] & 0x3F) | 0x80);
   string hex = "";
   for(int i = 0; i < 16; i++)
     {
      hex += StringFormat("%02x", digest[i]);
      if(i == 3 || i == 5 || i == 7 || i == 9)
         hex += "-";
     }
   return hex;
  }

//--- a short tag for an order comment (MetaTrader keeps 31 characters): "mtb#" + 12 hex digits
string MtbSignalTag(const string signal_id)
  {
   string u = MtbUuidFromName("tag:" + signal_id);
   StringReplace(u, "-", "");
   return "mtb#" + StringSubstr(u, 0, 12);
  }

long MtbNowMs()
  {
   return (long)TimeGMT() * 1000;
  }

//+------------------------------------------------------------------+
//| What the EA implements.                                          |
//+------------------------------------------------------------------+
class CBridgeHandler
  {
public:
   virtual          ~CBridgeHandler() {}
   //--- a signal that was not handled before; it is already acknowledged
   virtual void      OnSignal(CJsonValue *signal, const string strategy) {}
   virtual void      OnConnected() {}
   //--- an operator's pause or resume, after the client applied it (scope "account" or "strategy")
   virtual void      OnControl(const string command, const string scope, const string strategy) {}
  };

//+------------------------------------------------------------------+
//| The client.                                                      |
//+------------------------------------------------------------------+
class CBridgeClient
  {
private:
   CWebSocketClient *m_ws;
   CBridgeHandler   *m_handler;
   CJsonParser       m_parser;
   string            m_url;
   string            m_token;
   string            m_account;
   string            m_dir;
   bool              m_authenticated;
   bool              m_stopped;
   string            m_stop_reason;
   long              m_request_seq;
   uchar             m_buf[];
   //--- subscriptions: channel, last processed offset (-1: none yet), epoch
   string            m_channels[];
   long              m_offsets[];
   string            m_epochs[];
   int               m_channel_count;
   //--- pauses
   bool              m_paused_account;
   string            m_paused_strategies[];
   int               m_paused_count;
   //--- outbox: event ids, their JSON, the requestId in flight ("" if none), when sent
   string            m_out_ids[];
   string            m_out_json[];
   string            m_out_req[];
   ulong             m_out_sent[];
   int               m_out_count;
   //--- handled signals: id, state ("claimed", "done", "rejected"), unix seconds
   string            m_sig_ids[];
   string            m_sig_state[];
   long              m_sig_time[];
   int               m_sig_count;
   //--- every order a signal sent (a close of several positions sends several): ticket -> signal
   long              m_ord_ticket[];
   int               m_ord_signal[];
   int               m_ord_count;
   //--- heartbeats
   ulong             m_last_heartbeat_sent;
   ulong             m_last_heartbeat_answer;
   ulong             m_reconnect_after_ms;

   string            NextRequestId(const string prefix)
     {
      m_request_seq++;
      return prefix + IntegerToString(m_request_seq);
     }
   string            OutboxFile() { return m_dir + "outbox.jnl"; }
   string            SignalsFile() { return m_dir + "signals.jnl"; }
   string            StateFile() { return m_dir + "state.txt"; }

   bool              SendJson(const string json)
     {
      if(!m_ws.IsOpen())
         return false;
      return m_ws.SendText(json);
     }

   int               ChannelIndex(const string channel)
     {
      for(int i = 0; i < m_channel_count; i++)
         if(m_channels[i] == channel)
            return i;
      return -1;
     }

   //--- state file: "offset <channel> <offset> <epoch>", "paused account", "paused strategy <name>"
   void              LoadState()
     {
      string lines[];
      int n = MtbReadLines(StateFile(), lines);
      for(int i = 0; i < n; i++)
        {
         string parts[];
         int k = StringSplit(lines[i], ' ', parts);
         if(k == 4 && parts[0] == "offset")
           {
            int c = ChannelIndex(parts[1]);
            if(c >= 0)
              {
               m_offsets[c] = StringToInteger(parts[2]);
               m_epochs[c] = (parts[3] == "-") ? "" : parts[3];
              }
           }
         else
            if(k == 2 && parts[0] == "paused" && parts[1] == "account")
               m_paused_account = true;
            else
               if(k == 3 && parts[0] == "paused" && parts[1] == "strategy")
                  SetStrategyPaused(parts[2], true);
        }
     }
   bool              SaveState()
     {
      string lines[];
      int n = 0;
      ArrayResize(lines, m_channel_count + m_paused_count + 1);
      for(int i = 0; i < m_channel_count; i++)
        {
         if(m_offsets[i] < 0)
            continue;
         lines[n] = "offset " + m_channels[i] + " " + IntegerToString(m_offsets[i]) + " " +
                    (m_epochs[i] == "" ? "-" : m_epochs[i]);
         n++;
        }
      if(m_paused_account)
        {
         lines[n] = "paused account";
         n++;
        }
      for(int i = 0; i < m_paused_count; i++)
        {
         lines[n] = "paused strategy " + m_paused_strategies[i];
         n++;
        }
      bool ok = MtbWriteLines(StateFile(), lines, n);
      if(!ok)
         Print("mtbridge: cannot write ", StateFile(), ", error ", GetLastError());
      return ok;
     }

   void              SetStrategyPaused(const string strategy, const bool paused)
     {
      for(int i = 0; i < m_paused_count; i++)
        {
         if(m_paused_strategies[i] != strategy)
            continue;
         if(!paused)
           {
            for(int j = i; j < m_paused_count - 1; j++)
               m_paused_strategies[j] = m_paused_strategies[j + 1];
            m_paused_count--;
           }
         return;
        }
      if(paused)
        {
         ArrayResize(m_paused_strategies, m_paused_count + 1, 8);
         m_paused_strategies[m_paused_count] = strategy;
         m_paused_count++;
        }
     }

   //--- outbox journal, compacted at start
   void              LoadOutbox()
     {
      string lines[];
      int n = MtbReadLines(OutboxFile(), lines);
      for(int i = 0; i < n; i++)
        {
         string prefix = StringSubstr(lines[i], 0, 1);
         string rest = StringSubstr(lines[i], 1);
         if(prefix == "+")
           {
            CJsonValue *ev = m_parser.ParseText(rest);
            if(ev == NULL)
               continue;
            string id = ev.GetString("id", "");
            delete ev;
            if(id != "" && OutboxIndex(id) < 0)
               OutboxAdd(id, rest);
           }
         else
            if(prefix == "-")
               OutboxRemove(rest);
        }
      string keep[];
      ArrayResize(keep, m_out_count);
      for(int i = 0; i < m_out_count; i++)
         keep[i] = "+" + m_out_json[i];
      if(!MtbWriteLines(OutboxFile(), keep, m_out_count))
         Print("mtbridge: cannot compact ", OutboxFile(), ", error ", GetLastError());
     }
   int               OutboxIndex(const string id)
     {
      for(int i = 0; i < m_out_count; i++)
         if(m_out_ids[i] == id)
            return i;
      return -1;
     }
   void              OutboxAdd(const string id, const string json)
     {
      ArrayResize(m_out_ids, m_out_count + 1, 64);
      ArrayResize(m_out_json, m_out_count + 1, 64);
      ArrayResize(m_out_req, m_out_count + 1, 64);
      ArrayResize(m_out_sent, m_out_count + 1, 64);
      m_out_ids[m_out_count] = id;
      m_out_json[m_out_count] = json;
      m_out_req[m_out_count] = "";
      m_out_sent[m_out_count] = 0;
      m_out_count++;
     }
   void              OutboxRemove(const string id)
     {
      int i = OutboxIndex(id);
      if(i < 0)
         return;
      for(int j = i; j < m_out_count - 1; j++)
        {
         m_out_ids[j] = m_out_ids[j + 1];
         m_out_json[j] = m_out_json[j + 1];
         m_out_req[j] = m_out_req[j + 1];
         m_out_sent[j] = m_out_sent[j + 1];
        }
      m_out_count--;
     }
   void              OutboxAcked(const string id)
     {
      if(OutboxIndex(id) < 0)
         return;
      OutboxRemove(id);
      if(!MtbAppendLine(OutboxFile(), "-" + id))
         Print("mtbridge: cannot write ", OutboxFile(), ", error ", GetLastError());
     }
   void              FlushOutbox()
     {
      if(!m_authenticated)
         return;
      int in_flight = 0;
      ulong now = WsNowMs();
      for(int i = 0; i < m_out_count; i++)
         if(m_out_req[i] != "" && now - m_out_sent[i] < MTB_RESEND_MS)
            in_flight++;
      for(int i = 0; i < m_out_count && in_flight < MTB_MAX_IN_FLIGHT; i++)
        {
         if(m_out_req[i] != "" && now - m_out_sent[i] < MTB_RESEND_MS)
            continue;
         string req = NextRequestId("e");
         string msg = "{\"type\":\"trade.event\",\"requestId\":\"" + req + "\",\"payload\":" + m_out_json[i] + "}";
         if(!SendJson(msg))
            return;
         m_out_req[i] = req;
         m_out_sent[i] = now;
         in_flight++;
        }
     }
   int               OutboxByRequest(const string req)
     {
      for(int i = 0; i < m_out_count; i++)
         if(m_out_req[i] == req)
            return i;
      return -1;
     }

   //--- handled-signal journal, compacted at start (entries older than 8 days are dropped)
   void              LoadSignals()
     {
      string lines[];
      int n = MtbReadLines(SignalsFile(), lines);
      for(int i = 0; i < n; i++)
        {
         string parts[];
         if(StringSplit(lines[i], ' ', parts) != 4)
            continue;
         RecordSignal(parts[0], parts[1], StringToInteger(parts[2]), StringToInteger(parts[3]), false);
        }
      long cutoff = (long)TimeGMT() - MTB_SIGNAL_KEEP_SEC;
      //--- one line per (signal, order), all with the signal's last state, so nothing is forgotten
      string keep[];
      int k = 0;
      for(int i = 0; i < m_sig_count; i++)
        {
         if(m_sig_time[i] < cutoff)
            continue;
         string head = m_sig_ids[i] + " " + m_sig_state[i] + " " + IntegerToString(m_sig_time[i]) + " ";
         bool any = false;
         for(int o = 0; o < m_ord_count; o++)
           {
            if(m_ord_signal[o] != i)
               continue;
            ArrayResize(keep, k + 1, 64);
            keep[k] = head + IntegerToString(m_ord_ticket[o]);
            k++;
            any = true;
           }
         if(!any)
           {
            ArrayResize(keep, k + 1, 64);
            keep[k] = head + "0";
            k++;
           }
        }
      if(!MtbWriteLines(SignalsFile(), keep, k))
         Print("mtbridge: cannot compact ", SignalsFile(), ", error ", GetLastError());
     }
   void              RecordSignal(const string id, const string state, const long when, const long order, const bool persist)
     {
      int i = SignalIndex(id);
      if(i < 0)
        {
         ArrayResize(m_sig_ids, m_sig_count + 1, 64);
         ArrayResize(m_sig_state, m_sig_count + 1, 64);
         ArrayResize(m_sig_time, m_sig_count + 1, 64);
         i = m_sig_count;
         m_sig_count++;
         m_sig_ids[i] = id;
        }
      m_sig_state[i] = state;
      m_sig_time[i] = when;
      if(order > 0 && OrderIndex(order) < 0)
        {
         ArrayResize(m_ord_ticket, m_ord_count + 1, 64);
         ArrayResize(m_ord_signal, m_ord_count + 1, 64);
         m_ord_ticket[m_ord_count] = order;
         m_ord_signal[m_ord_count] = i;
         m_ord_count++;
        }
      if(persist)
        {
         string line = id + " " + state + " " + IntegerToString(when) + " " + IntegerToString(order);
         if(!MtbAppendLine(SignalsFile(), line))
            Print("mtbridge: cannot write ", SignalsFile(), ", error ", GetLastError());
        }
     }
   int               OrderIndex(const long order)
     {
      for(int o = m_ord_count - 1; o >= 0; o--)
         if(m_ord_ticket[o] == order)
            return o;
      return -1;
     }

   void              Subscribe(const int i)
     {
      CJsonWriter w;
      w.BeginObject();
      w.KeyStr("type", "subscribe");
      w.KeyStr("requestId", NextRequestId("s"));
      w.KeyStr("channel", m_channels[i]);
      if(m_offsets[i] >= 0)
        {
         w.Key("payload");
         w.BeginObject();
         w.KeyInt("since", m_offsets[i]);
         if(m_epochs[i] != "")
            w.KeyStr("epoch", m_epochs[i]);
         w.EndObject();
        }
      w.EndObject();
      SendJson(w.Text());
     }

   void              SendAck(const string signal_id)
     {
      CJsonWriter w;
      w.BeginObject();
      w.KeyStr("type", "signal.ack");
      w.KeyStr("requestId", NextRequestId("k"));
      w.Key("payload");
      w.BeginObject();
      w.KeyStr("signalId", signal_id);
      w.KeyStr("account", m_account);
      w.EndObject();
      w.EndObject();
      SendJson(w.Text());
     }

   void              OnResult(CJsonValue *msg)
     {
      string req = msg.GetString("requestId", "");
      CJsonValue *payload = msg.Get("payload");
      string prefix = StringSubstr(req, 0, 1);
      if(prefix == "a")
        {
         m_authenticated = true;
         m_last_heartbeat_answer = WsNowMs();
         Print("mtbridge: authenticated as ", (payload != NULL) ? payload.GetString("sub", "?") : "?");
         for(int i = 0; i < m_channel_count; i++)
            Subscribe(i);
         if(m_handler != NULL)
            m_handler.OnConnected();
         FlushOutbox();
         return;
        }
      if(prefix == "s" && payload != NULL)
        {
         int c = ChannelIndex(msg.GetString("channel", ""));
         if(c < 0)
            return;
         long offset = payload.GetInteger("offset", -1);
         string epoch = payload.GetString("epoch", "");
         bool recovered = payload.GetBool("recovered", false);
         if(m_offsets[c] >= 0 && !recovered)
            Print("mtbridge: ", m_channels[c], " could not be recovered (", payload.GetString("reason", "?"),
                  "): continuing live from offset ", IntegerToString(offset));
         if(m_offsets[c] < 0 || !recovered)
            m_offsets[c] = offset;
         m_epochs[c] = epoch;
         SaveState();
         return;
        }
      if(prefix == "e")
        {
         int i = OutboxByRequest(req);
         string id = (payload != NULL) ? payload.GetString("id", "") : "";
         if(id == "" && i >= 0)
            id = m_out_ids[i];
         OutboxAcked(id);
         FlushOutbox();
        }
     }

   void              OnError(CJsonValue *msg)
     {
      string req = msg.GetString("requestId", "");
      CJsonValue *payload = msg.Get("payload");
      string code = (payload != NULL) ? payload.GetString("code", "") : "";
      bool retryable = (payload != NULL) ? payload.GetBool("retryable", false) : false;
      Print("mtbridge: error ", code, " for request ", req, ": ", (payload != NULL) ? payload.GetString("message", "") : "");
      if(StringSubstr(req, 0, 1) == "e")
        {
         int i = OutboxByRequest(req);
         if(i < 0)
            return;
         if(retryable)
           {
            m_out_req[i] = "";
            return;
           }
         //--- the hub will never accept this event: keep it out of the way, loudly
         Print("mtbridge: dropping trade event ", m_out_ids[i], " refused with ", code, ": ", m_out_json[i]);
         OutboxAcked(m_out_ids[i]);
        }
     }

   void              OnMessage(CJsonValue *msg)
     {
      string channel = msg.GetString("channel", "");
      int c = ChannelIndex(channel);
      CJsonValue *offset_v = msg.Get("offset");
      CJsonValue *payload = msg.Get("payload");
      if(c < 0 || offset_v == NULL || !offset_v.IsInteger() || payload == NULL || !payload.IsObject())
         return;
      long offset = offset_v.Integer();
      //--- offsets only grow: anything at or below the last processed one was handled already
      if(m_offsets[c] >= 0 && offset <= m_offsets[c])
         return;
      if(StringFind(channel, "signals:") == 0)
         HandleSignal(payload, StringSubstr(channel, 8));
      else
         HandleControl(payload);
      m_offsets[c] = offset;
      SaveState();
     }

   void              HandleSignal(CJsonValue *signal, const string strategy)
     {
      string id = signal.GetString("id", "");
      if(id == "")
         return;
      //--- targeting: never act on a signal addressed to other accounts only
      CJsonValue *accounts = signal.Get("accounts");
      CJsonValue *groups = signal.Get("groups");
      if(accounts != NULL && accounts.IsArray() && (groups == NULL || groups.Size() == 0))
        {
         bool mine = false;
         for(int i = 0; i < accounts.Size(); i++)
           {
            CJsonValue *a = accounts.At(i);
            if(a.IsString() && (a.Str() == m_account || a.Str() == "*"))
               mine = true;
           }
         if(!mine)
           {
            Print("mtbridge: signal ", id, " is not for account ", m_account, ": ignored");
            return;
           }
        }
      SendAck(id);
      if(SignalIndex(id) >= 0)
         return;
      if(m_handler != NULL)
         m_handler.OnSignal(signal, strategy);
     }

   void              HandleControl(CJsonValue *control)
     {
      string command = control.GetString("command", "");
      string scope = control.GetString("scope", "");
      bool pause = (command == "pause");
      if(!pause && command != "resume")
         return;
      if(scope == "account")
         m_paused_account = pause;
      else
         if(scope == "strategy")
           {
            string strategy = control.GetString("strategy", "");
            if(strategy == "")
               return;
            SetStrategyPaused(strategy, pause);
           }
         else
            return;
      Print("mtbridge: ", command, " ", scope, (scope == "strategy") ? " " + control.GetString("strategy", "") : "",
            " by ", control.GetString("by", "?"));
      if(m_handler != NULL)
         m_handler.OnControl(command, scope, control.GetString("strategy", ""));
     }

   void              Dispatch()
     {
      int n = m_ws.GetMessage(m_buf);
      if(!m_ws.MessageIsText())
         return;
      CJsonValue *msg = m_parser.Parse(m_buf, n);
      if(msg == NULL)
        {
         Print("mtbridge: unreadable message from the hub: ", m_parser.ErrorText());
         return;
        }
      if(msg.IsObject())
        {
         string type = msg.GetString("type", "");
         if(type == "message")
            OnMessage(msg);
         else
            if(type == "result")
               OnResult(msg);
            else
               if(type == "error")
                  OnError(msg);
               else
                  if(type == "heartbeat")
                     m_last_heartbeat_answer = WsNowMs();
                  else
                     if(type == "reconnect")
                       {
                        CJsonValue *payload = msg.Get("payload");
                        long after = (payload != NULL) ? payload.GetInteger("afterMs", 0) : 0;
                        if(after > 0 && after < 600000)
                           m_reconnect_after_ms = (ulong)after;
                       }
                     else
                        if(type == "warning" || type == "unsubscribed")
                          {
                           CJsonValue *payload = msg.Get("payload");
                           Print("mtbridge: ", type, " ", msg.GetString("channel", ""), " ",
                                 (payload != NULL) ? payload.GetString("code", payload.GetString("reason", "")) : "");
                          }
        }
      delete msg;
     }

   void              OnOpen()
     {
      m_authenticated = false;
      for(int i = 0; i < m_out_count; i++)
         m_out_req[i] = "";
      CJsonWriter w;
      w.BeginObject();
      w.KeyStr("type", "auth");
      w.KeyStr("requestId", NextRequestId("a"));
      w.Key("payload");
      w.BeginObject();
      w.KeyStr("token", m_token);
      w.EndObject();
      w.EndObject();
      SendJson(w.Text());
      m_last_heartbeat_sent = WsNowMs();
      m_last_heartbeat_answer = WsNowMs();
     }

   void              OnClosed()
     {
      m_authenticated = false;
      int code = m_ws.CloseCode();
      Print("mtbridge: connection closed, code ", code, " ", m_ws.CloseReason(), " ", m_ws.ErrorText());
      if((code >= 4500 && code <= 4999) || code == 4004)
        {
         m_stopped = true;
         m_stop_reason = "hub refused the token (close code " + IntegerToString(code) +
                         "): set a valid token and restart the EA";
         m_ws.StopReconnecting();
         Print("mtbridge: ", m_stop_reason);
         return;
        }
      ulong floor_ms = 0;
      if(code == 4003)
         floor_ms = 5000;
      if(code == 4007)
         floor_ms = 30000;
      if(m_reconnect_after_ms > floor_ms)
         floor_ms = m_reconnect_after_ms;
      m_reconnect_after_ms = 0;
      if(floor_ms > 0)
         m_ws.DelayNextAttempt((uint)floor_ms);
     }

public:
                     CBridgeClient()
     {
      m_ws = new CWebSocketClient();
      m_handler = NULL;
      m_authenticated = false;
      m_stopped = false;
      m_request_seq = 0;
      m_channel_count = 0;
      m_paused_account = false;
      m_paused_count = 0;
      m_out_count = 0;
      m_sig_count = 0;
      m_ord_count = 0;
      m_last_heartbeat_sent = 0;
      m_last_heartbeat_answer = 0;
      m_reconnect_after_ms = 0;
     }
   virtual          ~CBridgeClient()
     {
      delete m_ws;
     }

   //--- strategies: comma-separated names; each becomes a signals:<name> subscription
   bool              Init(const string url, const string token, const string account, const long magic,
                          const string strategies, CBridgeHandler *handler)
     {
      m_url = url;
      m_token = token;
      m_account = account;
      m_handler = handler;
      m_dir = "MTBridge\\" + account + "-" + IntegerToString(magic) + "\\";
      string names[];
      int n = StringSplit(strategies, ',', names);
      for(int i = 0; i < n; i++)
        {
         string s = names[i];
         StringTrimLeft(s);
         StringTrimRight(s);
         if(s != "" && ChannelIndex("signals:" + s) < 0)
            AddChannel("signals:" + s);
        }
      AddChannel("account:" + account + ":control");
      LoadState();
      LoadOutbox();
      LoadSignals();
      m_ws.SetMaxMessageSize(1024 * 1024);
      m_ws.SetReconnect(true, 500, 30000);
      if(!m_ws.Open(m_url, MTB_PROTOCOL, ""))
        {
         Print("mtbridge: cannot connect yet (", m_ws.ErrorText(), "), retrying in ",
               IntegerToString((long)m_ws.NextAttemptInMs()), " ms");
         return m_ws.ErrorText() != "invalid WebSocket URL";
        }
      return true;
     }
   void              AddChannel(const string channel)
     {
      ArrayResize(m_channels, m_channel_count + 1, 8);
      ArrayResize(m_offsets, m_channel_count + 1, 8);
      ArrayResize(m_epochs, m_channel_count + 1, 8);
      m_channels[m_channel_count] = channel;
      m_offsets[m_channel_count] = -1;
      m_epochs[m_channel_count] = "";
      m_channel_count++;
     }

   //--- call from OnTimer
   void              Poll()
     {
      for(int i = 0; i < 200; i++)
        {
         int ev = m_ws.Poll();
         if(ev == WS_EVENT_NONE)
            break;
         if(ev == WS_EVENT_OPEN)
            OnOpen();
         else
            if(ev == WS_EVENT_MESSAGE)
               Dispatch();
            else
               if(ev == WS_EVENT_CLOSED)
                  OnClosed();
        }
      if(!m_ws.IsOpen() || !m_authenticated)
         return;
      ulong now = WsNowMs();
      if(now - m_last_heartbeat_sent >= MTB_HEARTBEAT_MS)
        {
         SendJson("{\"type\":\"heartbeat\",\"requestId\":\"" + NextRequestId("h") + "\"}");
         m_last_heartbeat_sent = now;
        }
      if(now - m_last_heartbeat_answer >= MTB_HEARTBEAT_DEAD_MS)
        {
         Print("mtbridge: no heartbeat answer for ", IntegerToString((long)(now - m_last_heartbeat_answer)), " ms: reconnecting");
         m_ws.Close(WS_CLOSE_NORMAL, "heartbeat timeout");
         m_last_heartbeat_answer = now;
         return;
        }
      FlushOutbox();
     }

   void              Shutdown()
     {
      m_ws.Shutdown(WS_CLOSE_GOING_AWAY);
     }

   //--- queues a trade event (a JSON object with a unique "id") until the hub commits it
   bool              QueueEvent(const string id, const string json)
     {
      if(OutboxIndex(id) >= 0)
         return true;
      if(!MtbAppendLine(OutboxFile(), "+" + json))
        {
         Print("mtbridge: cannot write ", OutboxFile(), ", error ", GetLastError());
         return false;
        }
      OutboxAdd(id, json);
      FlushOutbox();
      return true;
     }

   //--- signal journal: claim before trading (at most once), then record the outcome
   int               SignalIndex(const string id)
     {
      for(int i = 0; i < m_sig_count; i++)
         if(m_sig_ids[i] == id)
            return i;
      return -1;
     }
   bool              ClaimSignal(const string id) { RecordSignal(id, "claimed", (long)TimeGMT(), 0, true); return true; }
   void              SignalDone(const string id, const long order) { RecordSignal(id, "done", (long)TimeGMT(), order, true); }
   void              SignalRejected(const string id) { RecordSignal(id, "rejected", (long)TimeGMT(), 0, true); }
   string            SignalState(const string id) { int i = SignalIndex(id); return (i >= 0) ? m_sig_state[i] : ""; }
   //--- the signal that produced an order ticket ("" if none)
   string            SignalOfOrder(const long order)
     {
      if(order <= 0)
         return "";
      int o = OrderIndex(order);
      return (o >= 0) ? m_sig_ids[m_ord_signal[o]] : "";
     }
   int               SignalCount() const { return m_sig_count; }
   string            SignalIdAt(const int i) const { return m_sig_ids[i]; }
   string            SignalStateAt(const int i) const { return m_sig_state[i]; }

   bool              IsPaused(const string strategy)
     {
      if(m_paused_account)
         return true;
      for(int i = 0; i < m_paused_count; i++)
         if(m_paused_strategies[i] == strategy)
            return true;
      return false;
     }
   bool              IsConnected() const { return m_authenticated; }
   bool              IsStopped() const { return m_stopped; }
   string            StopReason() const { return m_stop_reason; }
   string            Account() const { return m_account; }
   //--- the EA's folder under Common/Files ("MTBridge\<login>-<magic>\")
   string            StateDir() const { return m_dir; }
   int               OutboxSize() const { return m_out_count; }
  };

#endif // MTBRIDGE_BRIDGECLIENT_MQH
