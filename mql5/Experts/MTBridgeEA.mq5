//+------------------------------------------------------------------+
//| MTBridgeEA.mq5 - executes mtbridge signals on this account and   |
//| reports orders, deals, positions and account snapshots back.     |
//| Protocol: docs/protocol.md. Guide: docs/mql5.md.                 |
//+------------------------------------------------------------------+
#property copyright "mtbridge"
#property version   "1.00"
#property strict

#include <Trade\Trade.mqh>
#include <MTBridge\BridgeClient.mqh>
#include <MTBridge\Risk.mqh>

input string HubUrl              = "ws://127.0.0.1:8765/ws"; // Hub WebSocket URL (ws:// or wss://)
input string Token               = "";                       // EA token (mtbridge token --role ea ...)
input string Strategies          = "alpha";                  // Strategies to follow, comma-separated
input string SymbolMap           = "";                       // Signal=broker symbol pairs, e.g. XAUUSD=GOLD,US30=DJ30
input string SymbolSuffix        = "";                       // Appended to every broker symbol, e.g. .m
input long   Magic               = 770001;                   // Magic number of this EA's orders
input double MaxLot              = 1.0;                      // Largest volume the EA opens (lots); larger sizes are clamped
input ENUM_MTB_LOT_MODE LotMode  = LOT_MODE_MULTIPLIER;      // Position sizing
input double LotMultiplier       = 1.0;                      // LotMode multiplier: signal volume x this
input double FixedLot            = 0.01;                     // LotMode fixed: lots per signal
input double RiskPercent         = 1.0;                      // LotMode risk: % of equity lost at the signal's SL
input int    MaxOpenPositions    = 0;                        // Positions + pending orders of this EA (0: no limit)
input double MaxDailyLossPct     = 0;                        // Pause at this loss, % of the day's starting equity (0: off)
input string TradingHours        = "";                       // Server-time windows for opening, e.g. 08:00-12:00,13:30-17:00
input string AllowedSymbols      = "";                       // Signal symbols allowed, comma-separated (empty: all)
input int    MaxSignalAgeSec     = 30;                       // Refuse signals created longer ago (seconds)
input int    MaxSlippagePoints   = 20;                       // Largest price deviation accepted (points)
input bool   TradingEnabled      = true;                     // false: acknowledge and reject every signal
input int    SnapshotIntervalSec = 60;                       // Account snapshot period (seconds, 0: off)
input int    TimerMs             = 100;                      // Polling period (milliseconds)

CBridgeClient *g_bridge = NULL;
CTrade         g_trade;
string         g_account = "";
string         g_map_from[];
string         g_map_to[];
int            g_map_count = 0;
string         g_allowed[];
int            g_allowed_count = 0;
ulong          g_last_snapshot = 0;
CTradingHours  g_hours;
CDailyLoss     g_daily;

//+------------------------------------------------------------------+
//| Inputs                                                           |
//+------------------------------------------------------------------+
void ParseInputs()
  {
   string pairs[];
   int n = StringSplit(SymbolMap, ',', pairs);
   for(int i = 0; i < n; i++)
     {
      string kv[];
      if(StringSplit(pairs[i], '=', kv) != 2)
         continue;
      StringTrimLeft(kv[0]);
      StringTrimRight(kv[0]);
      StringTrimLeft(kv[1]);
      StringTrimRight(kv[1]);
      ArrayResize(g_map_from, g_map_count + 1);
      ArrayResize(g_map_to, g_map_count + 1);
      g_map_from[g_map_count] = kv[0];
      g_map_to[g_map_count] = kv[1];
      g_map_count++;
     }
   string names[];
   n = StringSplit(AllowedSymbols, ',', names);
   for(int i = 0; i < n; i++)
     {
      string s = names[i];
      StringTrimLeft(s);
      StringTrimRight(s);
      if(s == "")
         continue;
      ArrayResize(g_allowed, g_allowed_count + 1);
      g_allowed[g_allowed_count] = s;
      g_allowed_count++;
     }
  }

string BrokerSymbol(const string signal_symbol)
  {
   string s = signal_symbol;
   for(int i = 0; i < g_map_count; i++)
      if(g_map_from[i] == signal_symbol)
         s = g_map_to[i];
   return s + SymbolSuffix;
  }

bool SymbolAllowed(const string signal_symbol)
  {
   if(g_allowed_count == 0)
      return true;
   for(int i = 0; i < g_allowed_count; i++)
      if(g_allowed[i] == signal_symbol)
         return true;
   return false;
  }

int SymbolDigits(const string symbol)
  {
   long digits = 5;
   if(!SymbolInfoInteger(symbol, SYMBOL_DIGITS, digits))
      digits = 5;
   return (int)digits;
  }

//+------------------------------------------------------------------+
//| Trade events                                                     |
//+------------------------------------------------------------------+
void BeginEvent(CJsonWriter &w, const string id, const string kind, const long ts, const string signal_id)
  {
   w.BeginObject();
   w.KeyStr("id", id);
   w.KeyStr("kind", kind);
   w.KeyStr("account", g_account);
   w.KeyInt("ts", ts);
   if(signal_id != "")
      w.KeyStr("signalId", signal_id);
  }

void QueueEvent(CJsonWriter &w, const string id)
  {
   w.EndObject();
   if(!w.Ok())
     {
      Print("mtbridge: trade event ", id, " could not be encoded: not sent");
      return;
     }
   g_bridge.QueueEvent(id, w.Text());
  }

string SideOfDeal(const long deal_type)
  {
   return (deal_type == DEAL_TYPE_BUY) ? "buy" : "sell";
  }

//--- an order the EA refused or the trade server rejected, reported against its signal
void ReportRejected(CJsonValue *signal, const string symbol, const string reason, const uint retcode)
  {
   string signal_id = signal.GetString("id", "");
   g_bridge.SignalRejected(signal_id);
   string id = MtbUuidFromName(g_account + "|order-rejected|" + signal_id);
   CJsonWriter w;
   BeginEvent(w, id, "order", MtbNowMs(), signal_id);
   w.KeyStr("state", "rejected");
   w.KeyStr("symbol", symbol != "" ? symbol : "-");
   string side = signal.GetString("side", "");
   if(side == "buy" || side == "sell")
      w.KeyStr("side", side);
   string otype = signal.GetString("orderType", "");
   if(otype == "market" || otype == "limit" || otype == "stop")
      w.KeyStr("orderType", otype);
   double volume = signal.GetNumber("volume", 0);
   if(volume > 0 && volume <= 10000)
      w.KeyNum("volume", volume, 8);
   if(Magic >= 0)
      w.KeyInt("magic", Magic);
   if(retcode > 0)
      w.KeyInt("retcode", (long)retcode);
   w.KeyStr("message", reason);
   QueueEvent(w, id);
   Print("mtbridge: signal ", signal_id, " rejected: ", reason);
  }

//--- ids of events the EA reported itself for a signal (SL/TP changes, cancellations);
//--- OnTradeTransaction skips them rather than report them again without the signal
string         g_own_events[];
int            g_own_next = 0;
#define MTB_OWN_EVENTS_KEEP 256

bool OwnEvent(const string id)
  {
   int n = ArraySize(g_own_events);
   for(int i = 0; i < n; i++)
      if(g_own_events[i] == id)
         return true;
   return false;
  }

void RememberOwnEvent(const string id)
  {
   if(ArraySize(g_own_events) < MTB_OWN_EVENTS_KEEP)
     {
      int n = ArraySize(g_own_events);
      ArrayResize(g_own_events, n + 1);
      g_own_events[n] = id;
      return;
     }
   g_own_events[g_own_next] = id;
   g_own_next = (g_own_next + 1) % MTB_OWN_EVENTS_KEEP;
  }

bool IsBuyType(const long type)
  {
   return type == ORDER_TYPE_BUY || type == ORDER_TYPE_BUY_LIMIT || type == ORDER_TYPE_BUY_STOP;
  }

//--- "market", "limit" or "stop"; "" for types the EA does not report
string OrderTypeName(const long type)
  {
   if(type == ORDER_TYPE_BUY || type == ORDER_TYPE_SELL)
      return "market";
   if(type == ORDER_TYPE_BUY_LIMIT || type == ORDER_TYPE_SELL_LIMIT)
      return "limit";
   if(type == ORDER_TYPE_BUY_STOP || type == ORDER_TYPE_SELL_STOP)
      return "stop";
   return "";
  }

//--- a pending order placed, cancelled or expired; the caller read its fields (active or history)
void ReportPendingOrder(const ulong ticket, const string state, const string signal_id, const string symbol,
                        const long type, const double volume, const double price, const double sl,
                        const double tp, const long magic, const string comment)
  {
   string otype = OrderTypeName(type);
   if(otype == "" || otype == "market")
      return;
   int digits = SymbolDigits(symbol);
   string id = MtbUuidFromName(g_account + "|order|" + IntegerToString((long)ticket) + "|" + state);
   CJsonWriter w;
   BeginEvent(w, id, "order", MtbNowMs(), signal_id);
   w.KeyStr("state", state);
   w.KeyInt("ticket", (long)ticket);
   w.KeyStr("symbol", symbol);
   w.KeyStr("side", IsBuyType(type) ? "buy" : "sell");
   w.KeyStr("orderType", otype);
   w.KeyNum("volume", volume, 8);
   w.KeyNum("price", price, digits);
   if(sl > 0)
      w.KeyNum("sl", sl, digits);
   if(tp > 0)
      w.KeyNum("tp", tp, digits);
   w.KeyInt("magic", magic);
   w.KeyStr("comment", comment);
   if(signal_id != "" && state == "cancelled")
      RememberOwnEvent(id);
   QueueEvent(w, id);
  }

//--- a pending order in the book (just placed)
void ReportPlaced(const ulong ticket)
  {
   if(!OrderSelect(ticket))
      return;
   ReportPendingOrder(ticket, "placed", g_bridge.SignalOfOrder((long)ticket), OrderGetString(ORDER_SYMBOL),
                      OrderGetInteger(ORDER_TYPE), OrderGetDouble(ORDER_VOLUME_INITIAL),
                      OrderGetDouble(ORDER_PRICE_OPEN), OrderGetDouble(ORDER_SL), OrderGetDouble(ORDER_TP),
                      OrderGetInteger(ORDER_MAGIC), OrderGetString(ORDER_COMMENT));
  }

//--- a pending order that left the book without a fill (state "cancelled" or "expired"), reported
//--- against the signal that placed it, unless a cancel signal already reported it
void ReportOrderEnded(const ulong ticket, const string state)
  {
   if(!HistoryOrderSelect(ticket))
      return;
   if(OwnEvent(MtbUuidFromName(g_account + "|order|" + IntegerToString((long)ticket) + "|" + state)))
      return;
   ReportPendingOrder(ticket, state, g_bridge.SignalOfOrder((long)ticket), HistoryOrderGetString(ticket, ORDER_SYMBOL),
                      HistoryOrderGetInteger(ticket, ORDER_TYPE), HistoryOrderGetDouble(ticket, ORDER_VOLUME_INITIAL),
                      HistoryOrderGetDouble(ticket, ORDER_PRICE_OPEN), HistoryOrderGetDouble(ticket, ORDER_SL),
                      HistoryOrderGetDouble(ticket, ORDER_TP), HistoryOrderGetInteger(ticket, ORDER_MAGIC),
                      HistoryOrderGetString(ticket, ORDER_COMMENT));
  }

void ReportOrder(const ulong ticket)
  {
   if(!HistoryOrderSelect(ticket))
      return;
   long type = HistoryOrderGetInteger(ticket, ORDER_TYPE);
   string otype = OrderTypeName(type);
   if(otype == "")
      return;
   string symbol = HistoryOrderGetString(ticket, ORDER_SYMBOL);
   int digits = SymbolDigits(symbol);
   string id = MtbUuidFromName(g_account + "|order|" + IntegerToString((long)ticket) + "|filled");
   CJsonWriter w;
   BeginEvent(w, id, "order", HistoryOrderGetInteger(ticket, ORDER_TIME_DONE_MSC), g_bridge.SignalOfOrder((long)ticket));
   w.KeyStr("state", "filled");
   w.KeyInt("ticket", (long)ticket);
   w.KeyStr("symbol", symbol);
   w.KeyStr("side", IsBuyType(type) ? "buy" : "sell");
   w.KeyStr("orderType", otype);
   w.KeyNum("volume", HistoryOrderGetDouble(ticket, ORDER_VOLUME_INITIAL), 8);
   double price = HistoryOrderGetDouble(ticket, ORDER_PRICE_OPEN);
   if(price > 0)
      w.KeyNum("price", price, digits);
   w.KeyInt("magic", HistoryOrderGetInteger(ticket, ORDER_MAGIC));
   w.KeyStr("comment", HistoryOrderGetString(ticket, ORDER_COMMENT));
   QueueEvent(w, id);
  }

double OpeningPrice(const long position_id)
  {
   int total = HistoryDealsTotal();
   for(int i = 0; i < total; i++)
     {
      ulong d = HistoryDealGetTicket(i);
      if(HistoryDealGetInteger(d, DEAL_POSITION_ID) == position_id && HistoryDealGetInteger(d, DEAL_ENTRY) == DEAL_ENTRY_IN)
         return HistoryDealGetDouble(d, DEAL_PRICE);
     }
   return 0;
  }

void ReportDeal(const ulong ticket)
  {
   if(!HistoryDealSelect(ticket))
      return;
   long type = HistoryDealGetInteger(ticket, DEAL_TYPE);
   if(type != DEAL_TYPE_BUY && type != DEAL_TYPE_SELL)
      return;
   long order = HistoryDealGetInteger(ticket, DEAL_ORDER);
   long position = HistoryDealGetInteger(ticket, DEAL_POSITION_ID);
   long entry = HistoryDealGetInteger(ticket, DEAL_ENTRY);
   long ts = HistoryDealGetInteger(ticket, DEAL_TIME_MSC);
   string symbol = HistoryDealGetString(ticket, DEAL_SYMBOL);
   string comment = HistoryDealGetString(ticket, DEAL_COMMENT);
   long magic = HistoryDealGetInteger(ticket, DEAL_MAGIC);
   double volume = HistoryDealGetDouble(ticket, DEAL_VOLUME);
   double price = HistoryDealGetDouble(ticket, DEAL_PRICE);
   double profit = HistoryDealGetDouble(ticket, DEAL_PROFIT);
   int digits = SymbolDigits(symbol);
   string signal_id = g_bridge.SignalOfOrder(order);
   string entry_name = "in";
   if(entry == DEAL_ENTRY_OUT)
      entry_name = "out";
   if(entry == DEAL_ENTRY_INOUT)
      entry_name = "inout";
   if(entry == DEAL_ENTRY_OUT_BY)
      entry_name = "out_by";

   string id = MtbUuidFromName(g_account + "|deal|" + IntegerToString((long)ticket));
   CJsonWriter w;
   BeginEvent(w, id, "deal", ts, signal_id);
   w.KeyInt("ticket", (long)ticket);
   w.KeyInt("order", order);
   w.KeyInt("position", position);
   w.KeyStr("symbol", symbol);
   w.KeyStr("side", SideOfDeal(type));
   w.KeyStr("entry", entry_name);
   w.KeyNum("volume", volume, 8);
   w.KeyNum("price", price, digits);
   w.KeyNum("profit", profit, 2);
   w.KeyNum("commission", HistoryDealGetDouble(ticket, DEAL_COMMISSION), 2);
   w.KeyNum("swap", HistoryDealGetDouble(ticket, DEAL_SWAP), 2);
   w.KeyInt("magic", magic);
   w.KeyStr("comment", comment);
   QueueEvent(w, id);

   //--- the position this deal opened, changed or closed
   string state = "opened";
   string pid_suffix = "|opened";
   string side = SideOfDeal(type);
   double pos_volume = volume;
   double price_open = price;
   double sl = 0;
   double tp = 0;
   if(entry != DEAL_ENTRY_IN)
     {
      side = (type == DEAL_TYPE_BUY) ? "sell" : "buy";
      price_open = OpeningPrice(position);
      if(PositionSelectByTicket((ulong)position))
        {
         state = "modified";
         pid_suffix = "|modified|" + IntegerToString((long)ticket);
         pos_volume = PositionGetDouble(POSITION_VOLUME);
        }
      else
        {
         state = "closed";
         pid_suffix = "|closed";
        }
     }
   if(state != "closed" && PositionSelectByTicket((ulong)position))
     {
      sl = PositionGetDouble(POSITION_SL);
      tp = PositionGetDouble(POSITION_TP);
     }
   string pid = MtbUuidFromName(g_account + "|position|" + IntegerToString(position) + pid_suffix);
   CJsonWriter p;
   BeginEvent(p, pid, "position", ts, signal_id);
   p.KeyInt("ticket", position);
   p.KeyStr("symbol", symbol);
   p.KeyStr("side", side);
   p.KeyStr("state", state);
   p.KeyNum("volume", pos_volume, 8);
   p.KeyNum("priceOpen", price_open, digits);
   if(sl > 0)
      p.KeyNum("sl", sl, digits);
   if(tp > 0)
      p.KeyNum("tp", tp, digits);
   if(state == "closed")
      p.KeyNum("profit", profit, 2);
   p.KeyInt("magic", magic);
   QueueEvent(p, pid);
  }

//--- the id of an SL/TP change: the same change always has the same id, whoever reports it
string SltpEventId(const ulong ticket, const double sl, const double tp, const int digits)
  {
   return MtbUuidFromName(g_account + "|position|" + IntegerToString((long)ticket) + "|sltp|" +
                          DoubleToString(sl, digits) + "|" + DoubleToString(tp, digits));
  }

//--- a position's SL/TP changed: by a signal (signal_id set, reported when the change is done) or
//--- by someone else (reported from OnTradeTransaction, without a signal)
void ReportPositionModified(const ulong ticket, const string signal_id)
  {
   if(!PositionSelectByTicket(ticket))
      return;
   string symbol = PositionGetString(POSITION_SYMBOL);
   int digits = SymbolDigits(symbol);
   double sl = PositionGetDouble(POSITION_SL);
   double tp = PositionGetDouble(POSITION_TP);
   string id = SltpEventId(ticket, sl, tp, digits);
   if(signal_id == "" && OwnEvent(id))
      return;
   CJsonWriter w;
   BeginEvent(w, id, "position", MtbNowMs(), signal_id);
   w.KeyInt("ticket", (long)ticket);
   w.KeyStr("symbol", symbol);
   w.KeyStr("side", PositionGetInteger(POSITION_TYPE) == POSITION_TYPE_BUY ? "buy" : "sell");
   w.KeyStr("state", "modified");
   w.KeyNum("volume", PositionGetDouble(POSITION_VOLUME), 8);
   w.KeyNum("priceOpen", PositionGetDouble(POSITION_PRICE_OPEN), digits);
   if(sl > 0)
      w.KeyNum("sl", sl, digits);
   if(tp > 0)
      w.KeyNum("tp", tp, digits);
   w.KeyNum("profit", PositionGetDouble(POSITION_PROFIT), 2);
   w.KeyInt("magic", PositionGetInteger(POSITION_MAGIC));
   if(signal_id != "")
      RememberOwnEvent(id);
   QueueEvent(w, id);
  }

//--- an account snapshot; risk_state "" for the periodic one, else a daily-loss pause ("daily_loss")
//--- or its end ("active") under a name-based id (day and trip), so it is reported once
void WriteSnapshot(const string risk_state, const long day, const int trips)
  {
   long ts = MtbNowMs();
   string id = MtbUuidFromName(g_account + "|account|" + IntegerToString(ts));
   if(risk_state != "")
      id = MtbUuidFromName(g_account + "|risk|" + IntegerToString(day) + "|" + IntegerToString(trips) + "|" + risk_state);
   CJsonWriter w;
   BeginEvent(w, id, "account", ts, "");
   w.KeyNum("balance", AccountInfoDouble(ACCOUNT_BALANCE), 2);
   w.KeyNum("equity", AccountInfoDouble(ACCOUNT_EQUITY), 2);
   double margin = AccountInfoDouble(ACCOUNT_MARGIN);
   w.KeyNum("margin", margin, 2);
   w.KeyNum("freeMargin", AccountInfoDouble(ACCOUNT_MARGIN_FREE), 2);
   if(margin > 0)
      w.KeyNum("marginLevel", AccountInfoDouble(ACCOUNT_MARGIN_LEVEL), 2);
   w.KeyStr("currency", AccountInfoString(ACCOUNT_CURRENCY));
   w.KeyInt("leverage", AccountInfoInteger(ACCOUNT_LEVERAGE));
   if(risk_state != "")
     {
      w.KeyStr("riskState", risk_state);
      w.KeyNum("dayStartEquity", g_daily.start_equity, 2);
      //--- the next broker day, in unix ms (server time minus its offset from UTC)
      if(risk_state == "daily_loss")
         w.KeyInt("resumeAt", ((day + 1) * MTB_DAY_SECONDS - MtbServerUtcOffset()) * 1000);
     }
   w.Key("positions");
   w.BeginArray();
   int total = PositionsTotal();
   for(int i = 0; i < total && i < 1000; i++)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket == 0)
         continue;
      string symbol = PositionGetString(POSITION_SYMBOL);
      int digits = SymbolDigits(symbol);
      w.BeginObject();
      w.KeyInt("ticket", (long)ticket);
      w.KeyStr("symbol", symbol);
      w.KeyStr("side", PositionGetInteger(POSITION_TYPE) == POSITION_TYPE_BUY ? "buy" : "sell");
      w.KeyNum("volume", PositionGetDouble(POSITION_VOLUME), 8);
      w.KeyNum("priceOpen", PositionGetDouble(POSITION_PRICE_OPEN), digits);
      w.KeyNum("profit", PositionGetDouble(POSITION_PROFIT), 2);
      w.KeyInt("magic", PositionGetInteger(POSITION_MAGIC));
      w.EndObject();
     }
   w.EndArray();
   QueueEvent(w, id);
  }

void ReportSnapshot()
  {
   WriteSnapshot("", 0, 0);
  }

//+------------------------------------------------------------------+
//| The daily loss limit: checked on every timer tick and before     |
//| every open; a pause and its end are reported as account events.  |
//+------------------------------------------------------------------+
double AccountEquity()
  {
   return NormalizeDouble(AccountInfoDouble(ACCOUNT_EQUITY), 2);
  }

void CheckDailyLoss()
  {
   double equity = AccountEquity();
   long paused_day = g_daily.day;
   int paused_trips = g_daily.trips;
   if(g_daily.Roll((long)TimeTradeServer() / MTB_DAY_SECONDS, equity))
     {
      Print("mtbridge: a new broker day ends the daily loss pause");
      WriteSnapshot("active", paused_day, paused_trips);
      return;
     }
   if(MaxDailyLossPct <= 0 && g_daily.Resume(equity))
     {
      Print("mtbridge: MaxDailyLossPct is 0: the daily loss pause ends");
      WriteSnapshot("active", paused_day, paused_trips);
      return;
     }
   if(g_daily.Trip(equity, MaxDailyLossPct))
     {
      Print("mtbridge: daily loss limit reached (equity ", DoubleToString(equity, 2), ", day start ",
            DoubleToString(g_daily.start_equity, 2), "): opening paused until the next broker day or a resume");
      WriteSnapshot("daily_loss", g_daily.day, g_daily.trips);
     }
  }

//--- an operator resumed the account: a daily-loss pause ends, with a fresh allowance from now
void ResumeDailyLoss()
  {
   if(g_daily.Resume(AccountEquity()))
     {
      Print("mtbridge: daily loss pause ended by an operator");
      WriteSnapshot("active", g_daily.day, g_daily.trips);
     }
  }

//--- this EA's positions and pending orders (what MaxOpenPositions counts)
int HeldByThisEA()
  {
   int n = 0;
   int total = PositionsTotal();
   for(int i = 0; i < total; i++)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket != 0 && PositionGetInteger(POSITION_MAGIC) == Magic)
         n++;
     }
   total = OrdersTotal();
   for(int i = 0; i < total; i++)
     {
      ulong ticket = OrderGetTicket(i);
      if(ticket != 0 && OrderGetInteger(ORDER_MAGIC) == Magic)
         n++;
     }
   return n;
  }

//+------------------------------------------------------------------+
//| Signal execution within the risk guards                          |
//+------------------------------------------------------------------+
//--- positions of this EA on a symbol ("" = any) and side ("" = any)
int MatchingPositions(const string symbol, const string side, ulong &tickets[])
  {
   int n = 0;
   int total = PositionsTotal();
   for(int i = 0; i < total; i++)
     {
      ulong ticket = PositionGetTicket(i);
      if(ticket == 0 || PositionGetInteger(POSITION_MAGIC) != Magic)
         continue;
      if(symbol != "" && PositionGetString(POSITION_SYMBOL) != symbol)
         continue;
      string pside = PositionGetInteger(POSITION_TYPE) == POSITION_TYPE_BUY ? "buy" : "sell";
      if(side != "" && pside != side)
         continue;
      ArrayResize(tickets, n + 1);
      tickets[n] = ticket;
      n++;
     }
   return n;
  }

//--- a limit or stop order at the signal's price; it expires with the signal (expiresAt, whole seconds)
void PlacePending(CJsonValue *signal, const string id, const string symbol, const string side, const string otype,
                  const double volume)
  {
   int digits = SymbolDigits(symbol);
   double price = NormalizeDouble(signal.GetNumber("price", 0), digits);
   if(price <= 0)
     {
      ReportRejected(signal, symbol, "invalid_price", 0);
      return;
     }
   double sl = NormalizeDouble(signal.GetNumber("sl", 0), digits);
   double tp = NormalizeDouble(signal.GetNumber("tp", 0), digits);
   long expires_ms = signal.GetInteger("expiresAt", 0);
   ENUM_ORDER_TYPE_TIME type_time = ORDER_TIME_GTC;
   datetime expiration = 0;
   if(expires_ms > 0)
     {
      type_time = ORDER_TIME_SPECIFIED;
      //--- MT5 expirations are server time: the signal's UTC expiry plus the server's offset from UTC
      expiration = (datetime)((expires_ms + 999) / 1000 + MtbServerUtcOffset());
     }
   g_bridge.ClaimSignal(id);
   bool ok;
   string tag = MtbSignalTag(id);
   if(otype == "limit")
     {
      if(side == "buy")
         ok = g_trade.BuyLimit(volume, price, symbol, sl, tp, type_time, expiration, tag);
      else
         ok = g_trade.SellLimit(volume, price, symbol, sl, tp, type_time, expiration, tag);
     }
   else
     {
      if(side == "buy")
         ok = g_trade.BuyStop(volume, price, symbol, sl, tp, type_time, expiration, tag);
      else
         ok = g_trade.SellStop(volume, price, symbol, sl, tp, type_time, expiration, tag);
     }
   if(ok && g_trade.ResultRetcode() == TRADE_RETCODE_DONE)
     {
      g_bridge.SignalDone(id, (long)g_trade.ResultOrder());
      Print("mtbridge: signal ", id, " placed: ", side, " ", otype, " ", DoubleToString(volume, 2), " ", symbol,
            " at ", DoubleToString(price, digits), " order ", IntegerToString((long)g_trade.ResultOrder()));
      return;
     }
   ReportRejected(signal, symbol, "trade_server: " + g_trade.ResultRetcodeDescription(), g_trade.ResultRetcode());
  }

//--- cancel this EA's pending orders on the symbol (one side when the signal names it)
void CancelOrders(CJsonValue *signal, const string id, const string symbol)
  {
   string side = signal.GetString("side", "");
   ulong tickets[];
   int n = 0;
   int total = OrdersTotal();
   for(int i = 0; i < total; i++)
     {
      ulong ticket = OrderGetTicket(i);
      if(ticket == 0 || OrderGetInteger(ORDER_MAGIC) != Magic || OrderGetString(ORDER_SYMBOL) != symbol)
         continue;
      if(side != "" && (IsBuyType(OrderGetInteger(ORDER_TYPE)) ? "buy" : "sell") != side)
         continue;
      ArrayResize(tickets, n + 1);
      tickets[n] = ticket;
      n++;
     }
   if(n == 0)
     {
      ReportRejected(signal, symbol, "no_order", 0);
      return;
     }
   g_bridge.ClaimSignal(id);
   int done = 0;
   uint last_retcode = 0;
   for(int i = 0; i < n; i++)
     {
      if(!OrderSelect(tickets[i]))
         continue;
      //--- read before the order leaves the book; reported with this signal once the server confirms
      long type = OrderGetInteger(ORDER_TYPE);
      double volume = OrderGetDouble(ORDER_VOLUME_INITIAL);
      double price = OrderGetDouble(ORDER_PRICE_OPEN);
      double sl = OrderGetDouble(ORDER_SL);
      double tp = OrderGetDouble(ORDER_TP);
      long magic = OrderGetInteger(ORDER_MAGIC);
      string comment = OrderGetString(ORDER_COMMENT);
      if(g_trade.OrderDelete(tickets[i]) && g_trade.ResultRetcode() == TRADE_RETCODE_DONE)
        {
         ReportPendingOrder(tickets[i], "cancelled", id, symbol, type, volume, price, sl, tp, magic, comment);
         done++;
        }
      else
         last_retcode = g_trade.ResultRetcode();
     }
   if(done == 0)
      ReportRejected(signal, symbol, "trade_server: " + g_trade.ResultRetcodeDescription(), last_retcode);
   else
      g_bridge.SignalDone(id, 0);
  }

void OpenPosition(CJsonValue *signal, const string id, const string symbol)
  {
   string side = signal.GetString("side", "");
   string otype = signal.GetString("orderType", "market");
   if(otype != "market" && otype != "limit" && otype != "stop")
     {
      ReportRejected(signal, symbol, "unsupported_order_type", 0);
      return;
     }
   if(side != "buy" && side != "sell")
     {
      ReportRejected(signal, symbol, "invalid_side", 0);
      return;
     }
   //--- account limits: opening only (close, close_all, modify and cancel reduce risk and always run)
   CheckDailyLoss();
   if(g_daily.paused)
     {
      ReportRejected(signal, symbol, "daily_loss", 0);
      return;
     }
   if(!g_hours.Contains(TimeTradeServer()))
     {
      ReportRejected(signal, symbol, "outside_trading_hours", 0);
      return;
     }
   if(MaxOpenPositions > 0 && HeldByThisEA() >= MaxOpenPositions)
     {
      ReportRejected(signal, symbol, "max_open_positions", 0);
      return;
     }
   //--- position sizing (LotMode), within the symbol's volume rules and MaxLot
   double point = SymbolInfoDouble(symbol, SYMBOL_POINT);
   int digits = SymbolDigits(symbol);
   double market = (side == "buy") ? SymbolInfoDouble(symbol, SYMBOL_ASK) : SymbolInfoDouble(symbol, SYMBOL_BID);
   double entry = (otype == "market") ? market : NormalizeDouble(signal.GetNumber("price", 0), digits);
   if(LotMode == LOT_MODE_RISK && entry <= 0)
     {
      ReportRejected(signal, symbol, "invalid_price", 0);
      return;
     }
   string reason = "";
   double volume = MtbSizeVolume(LotMode, signal.GetNumber("volume", 0), LotMultiplier, FixedLot, RiskPercent,
                                 AccountEquity(), entry, NormalizeDouble(signal.GetNumber("sl", 0), digits),
                                 SymbolInfoDouble(symbol, SYMBOL_TRADE_TICK_SIZE),
                                 SymbolInfoDouble(symbol, SYMBOL_TRADE_TICK_VALUE),
                                 SymbolInfoDouble(symbol, SYMBOL_VOLUME_MIN), SymbolInfoDouble(symbol, SYMBOL_VOLUME_MAX),
                                 SymbolInfoDouble(symbol, SYMBOL_VOLUME_STEP), MaxLot, reason);
   if(reason != "")
     {
      ReportRejected(signal, symbol, reason, 0);
      return;
     }
   if(otype != "market")
     {
      PlacePending(signal, id, symbol, side, otype, volume);
      return;
     }
   long deviation = MaxSlippagePoints;
   long signal_dev = signal.GetInteger("deviation", -1);
   if(signal_dev >= 0 && signal_dev < deviation)
      deviation = signal_dev;
   double price = signal.GetNumber("price", 0);
   if(price > 0 && point > 0 && MathAbs(market - price) > deviation * point + point / 2)
     {
      ReportRejected(signal, symbol, "slippage", 0);
      return;
     }
   double sl = NormalizeDouble(signal.GetNumber("sl", 0), digits);
   double tp = NormalizeDouble(signal.GetNumber("tp", 0), digits);
   //--- at most once: the claim is on disk before the order leaves
   g_bridge.ClaimSignal(id);
   g_trade.SetDeviationInPoints((ulong)deviation);
   bool ok;
   if(side == "buy")
      ok = g_trade.Buy(volume, symbol, market, sl, tp, MtbSignalTag(id));
   else
      ok = g_trade.Sell(volume, symbol, market, sl, tp, MtbSignalTag(id));
   if(ok && g_trade.ResultRetcode() == TRADE_RETCODE_DONE)
     {
      g_bridge.SignalDone(id, (long)g_trade.ResultOrder());
      Print("mtbridge: signal ", id, " executed: ", side, " ", DoubleToString(volume, 2), " ", symbol,
            " order ", IntegerToString((long)g_trade.ResultOrder()));
      return;
     }
   ReportRejected(signal, symbol, "trade_server: " + g_trade.ResultRetcodeDescription(), g_trade.ResultRetcode());
  }

void ClosePositions(CJsonValue *signal, const string id, const string symbol, const bool all)
  {
   ulong tickets[];
   string side = all ? "" : signal.GetString("side", "");
   int n = MatchingPositions(symbol, side, tickets);
   if(n == 0)
     {
      ReportRejected(signal, symbol, "no_position", 0);
      return;
     }
   g_bridge.ClaimSignal(id);
   g_trade.SetDeviationInPoints((ulong)MaxSlippagePoints);
   int closed = 0;
   uint last_retcode = 0;
   for(int i = 0; i < n; i++)
     {
      if(g_trade.PositionClose(tickets[i]) && g_trade.ResultRetcode() == TRADE_RETCODE_DONE)
        {
         g_bridge.SignalDone(id, (long)g_trade.ResultOrder());
         closed++;
        }
      else
         last_retcode = g_trade.ResultRetcode();
     }
   if(closed == 0)
      ReportRejected(signal, symbol, "trade_server: " + g_trade.ResultRetcodeDescription(), last_retcode);
  }

void ModifyPositions(CJsonValue *signal, const string id, const string symbol)
  {
   ulong tickets[];
   int n = MatchingPositions(symbol, signal.GetString("side", ""), tickets);
   if(n == 0)
     {
      ReportRejected(signal, symbol, "no_position", 0);
      return;
     }
   int digits = SymbolDigits(symbol);
   double sl = NormalizeDouble(signal.GetNumber("sl", 0), digits);
   double tp = NormalizeDouble(signal.GetNumber("tp", 0), digits);
   g_bridge.ClaimSignal(id);
   int done = 0;
   uint last_retcode = 0;
   for(int i = 0; i < n; i++)
     {
      if(g_trade.PositionModify(tickets[i], sl, tp) && g_trade.ResultRetcode() == TRADE_RETCODE_DONE)
        {
         //--- reported here, with the signal, so that the hub marks the signal executed
         ReportPositionModified(tickets[i], id);
         done++;
        }
      else
         last_retcode = g_trade.ResultRetcode();
     }
   if(done == 0)
      ReportRejected(signal, symbol, "trade_server: " + g_trade.ResultRetcodeDescription(), last_retcode);
   else
      g_bridge.SignalDone(id, 0);
  }

void ExecuteSignal(CJsonValue *signal, const string strategy)
  {
   string id = signal.GetString("id", "");
   string action = signal.GetString("action", "");
   string signal_symbol = signal.GetString("symbol", "");
   string symbol = (signal_symbol != "") ? BrokerSymbol(signal_symbol) : "";
   if(g_bridge.IsPaused(strategy))
     {
      ReportRejected(signal, symbol, "paused", 0);
      return;
     }
   if(!TradingEnabled)
     {
      ReportRejected(signal, symbol, "trading_disabled", 0);
      return;
     }
   long now = MtbNowMs();
   long expires = signal.GetInteger("expiresAt", 0);
   long created = signal.GetInteger("createdAt", 0);
   if(expires > 0 && now > expires)
     {
      ReportRejected(signal, symbol, "expired", 0);
      return;
     }
   if(created > 0 && now - created > (long)MaxSignalAgeSec * 1000)
     {
      ReportRejected(signal, symbol, "stale", 0);
      return;
     }
   if(action == "close_all")
     {
      ClosePositions(signal, id, symbol, true);
      return;
     }
   if(signal_symbol == "" || !SymbolAllowed(signal_symbol))
     {
      ReportRejected(signal, symbol, "symbol_not_allowed", 0);
      return;
     }
   if(!SymbolSelect(symbol, true))
     {
      ReportRejected(signal, symbol, "unknown_symbol", 0);
      return;
     }
   if(action == "open")
      OpenPosition(signal, id, symbol);
   else
      if(action == "close")
         ClosePositions(signal, id, symbol, false);
      else
         if(action == "modify")
            ModifyPositions(signal, id, symbol);
         else
            if(action == "cancel")
               CancelOrders(signal, id, symbol);
            else
               ReportRejected(signal, symbol, "unsupported_action", 0);
  }

class CSignalExecutor : public CBridgeHandler
  {
public:
   virtual void      OnSignal(CJsonValue *signal, const string strategy) { ExecuteSignal(signal, strategy); }
   virtual void      OnControl(const string command, const string scope, const string strategy)
     {
      if(command == "resume" && scope == "account")
         ResumeDailyLoss();
     }
  };

CSignalExecutor g_executor;

//--- after a crash between claiming a signal and recording its order, find the order by its tag
void Reconcile()
  {
   HistorySelect(0, TimeCurrent() + 86400);
   for(int i = 0; i < g_bridge.SignalCount(); i++)
     {
      if(g_bridge.SignalStateAt(i) != "claimed")
         continue;
      string id = g_bridge.SignalIdAt(i);
      string tag = MtbSignalTag(id);
      bool found = false;
      int total = HistoryOrdersTotal();
      for(int k = 0; k < total; k++)
        {
         ulong order = HistoryOrderGetTicket(k);
         if(HistoryOrderGetString(order, ORDER_COMMENT) != tag)
            continue;
         found = true;
         g_bridge.SignalDone(id, (long)order);
         ReportOrder(order);
         int deals = HistoryDealsTotal();
         for(int d = 0; d < deals; d++)
           {
            ulong deal = HistoryDealGetTicket(d);
            if(HistoryDealGetInteger(deal, DEAL_ORDER) == (long)order)
               ReportDeal(deal);
           }
        }
      int active = OrdersTotal();
      for(int k = 0; k < active; k++)
        {
         ulong order = OrderGetTicket(k);
         if(order == 0 || OrderGetString(ORDER_COMMENT) != tag)
            continue;
         found = true;
         g_bridge.SignalDone(id, (long)order);
         ReportPlaced(order);
        }
      if(!found)
        {
         //--- the order never reached the server: report it, do not guess and trade twice
         g_bridge.SignalRejected(id);
         string eid = MtbUuidFromName(g_account + "|order-rejected|" + id);
         CJsonWriter w;
         BeginEvent(w, eid, "order", MtbNowMs(), id);
         w.KeyStr("state", "rejected");
         w.KeyStr("symbol", "-");
         w.KeyStr("message", "interrupted: the terminal stopped while the order was being sent");
         QueueEvent(w, eid);
        }
     }
  }

//+------------------------------------------------------------------+
//| Event handlers                                                   |
//+------------------------------------------------------------------+
int OnInit()
  {
   if(Token == "")
     {
      Print("mtbridge: the Token input is empty");
      return INIT_PARAMETERS_INCORRECT;
     }
   if(MaxLot <= 0 || MaxSignalAgeSec <= 0 || MaxSlippagePoints < 0 || TimerMs < 10 || Magic < 0)
     {
      Print("mtbridge: MaxLot and MaxSignalAgeSec must be > 0, MaxSlippagePoints and Magic >= 0, TimerMs >= 10");
      return INIT_PARAMETERS_INCORRECT;
     }
   if(LotMode < LOT_MODE_MULTIPLIER || LotMode > LOT_MODE_RISK || LotMultiplier <= 0 || FixedLot <= 0 ||
      RiskPercent <= 0 || RiskPercent > 100 || MaxOpenPositions < 0 || MaxDailyLossPct < 0 || MaxDailyLossPct >= 100)
     {
      Print("mtbridge: LotMultiplier, FixedLot and RiskPercent (at most 100) must be > 0, MaxOpenPositions >= 0, ",
            "MaxDailyLossPct from 0 to below 100");
      return INIT_PARAMETERS_INCORRECT;
     }
   if(!g_hours.Parse(TradingHours))
     {
      Print("mtbridge: TradingHours must be HH:MM-HH:MM windows separated by commas, e.g. 08:00-12:00,13:30-17:00");
      return INIT_PARAMETERS_INCORRECT;
     }
   g_account = IntegerToString(AccountInfoInteger(ACCOUNT_LOGIN));
   ParseInputs();
   g_trade.SetExpertMagicNumber((ulong)Magic);
   g_trade.SetDeviationInPoints((ulong)MaxSlippagePoints);
   g_bridge = new CBridgeClient();
   if(!g_bridge.Init(HubUrl, Token, g_account, Magic, Strategies, GetPointer(g_executor)))
     {
      Print("mtbridge: invalid HubUrl (use ws://host:port/ws or wss://host/ws)");
      return INIT_PARAMETERS_INCORRECT;
     }
   Reconcile();
   g_daily.Load(g_bridge.StateDir() + "risk.txt");
   CheckDailyLoss();
   EventSetMillisecondTimer(TimerMs);
   Print("mtbridge: EA started for account ", g_account, ", ", IntegerToString(g_bridge.OutboxSize()),
         " trade events waiting in the outbox");
   return INIT_SUCCEEDED;
  }

void OnTimer()
  {
   if(g_bridge == NULL)
      return;
   CheckDailyLoss();
   g_bridge.Poll();
   ulong now = WsNowMs();
   if(SnapshotIntervalSec > 0 && g_bridge.IsConnected() &&
      (g_last_snapshot == 0 || now - g_last_snapshot >= (ulong)SnapshotIntervalSec * 1000))
     {
      g_last_snapshot = now;
      ReportSnapshot();
     }
  }

void OnTradeTransaction(const MqlTradeTransaction &trans, const MqlTradeRequest &request, const MqlTradeResult &result)
  {
   if(g_bridge == NULL)
      return;
   if(trans.type == TRADE_TRANSACTION_DEAL_ADD)
      ReportDeal(trans.deal);
   if(trans.type == TRADE_TRANSACTION_ORDER_UPDATE && trans.order_state == ORDER_STATE_PLACED)
      ReportPlaced(trans.order);
   if(trans.type == TRADE_TRANSACTION_HISTORY_ADD)
     {
      if(trans.order_state == ORDER_STATE_FILLED)
         ReportOrder(trans.order);
      if(trans.order_state == ORDER_STATE_CANCELED)
         ReportOrderEnded(trans.order, "cancelled");
      if(trans.order_state == ORDER_STATE_EXPIRED)
         ReportOrderEnded(trans.order, "expired");
     }
   if(trans.type == TRADE_TRANSACTION_POSITION)
      ReportPositionModified(trans.position, "");
  }

void OnDeinit(const int reason)
  {
   EventKillTimer();
   if(g_bridge != NULL)
     {
      g_bridge.Shutdown();
      delete g_bridge;
      g_bridge = NULL;
     }
  }
