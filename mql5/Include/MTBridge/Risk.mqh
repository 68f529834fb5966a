//+------------------------------------------------------------------+
//| Risk.mqh - position sizing and account risk limits of the EA:    |
//| LotMode (multiplier, fixed lot, risk % from the SL distance),    |
//| TradingHours windows and the daily loss limit's state.           |
//| The simulator applies the same rules: bridge/simulator/risk.py.  |
//| Guide: docs/mql5.md ("Position sizing and risk limits").         |
//+------------------------------------------------------------------+
#ifndef MTBRIDGE_RISK_MQH
#define MTBRIDGE_RISK_MQH

#include <MTBridge\BridgeClient.mqh>

enum ENUM_MTB_LOT_MODE
  {
   LOT_MODE_MULTIPLIER = 0, // signal volume x LotMultiplier
   LOT_MODE_FIXED = 1,      // FixedLot for every signal
   LOT_MODE_RISK = 2        // RiskPercent of equity lost at the SL
  };

//--- a millionth of a step: 0.3 / 0.01 = 29.999999999999996 still counts as 30 steps
#define MTB_STEP_EPSILON   0.000001
#define MTB_VOLUME_EPSILON 0.000000001
#define MTB_DAY_SECONDS    86400

//+------------------------------------------------------------------+
//| The volume to trade, or 0 with the rejection reason in reason:   |
//| invalid_volume, no_stop_loss or volume_below_min. Clamped to     |
//| min(vmax, max_lot), rounded DOWN to vstep (never more risk than  |
//| asked), never rounded up to vmin.                                |
//+------------------------------------------------------------------+
double MtbSizeVolume(const ENUM_MTB_LOT_MODE mode, const double signal_volume, const double multiplier,
                     const double fixed_lot, const double risk_percent, const double equity, const double entry,
                     const double sl, const double tick_size, const double tick_value, const double vmin,
                     const double vmax, const double vstep, const double max_lot, string &reason)
  {
   reason = "";
   double raw = 0;
   if(mode == LOT_MODE_MULTIPLIER)
     {
      if(!(signal_volume > 0))
        {
         reason = "invalid_volume";
         return 0;
        }
      raw = signal_volume * multiplier;
     }
   else
      if(mode == LOT_MODE_FIXED)
         raw = fixed_lot;
      else
        {
         double distance = MathAbs(entry - sl);
         if(sl <= 0 || distance <= 0)
           {
            reason = "no_stop_loss";
            return 0;
           }
         if(tick_size <= 0 || tick_value <= 0)
           {
            reason = "volume_below_min";
            return 0;
           }
         double loss_per_lot = distance / tick_size * tick_value;
         raw = equity * risk_percent / 100.0 / loss_per_lot;
        }
   double limit = MathMin(vmax, max_lot);
   if(raw > limit)
      raw = limit;
   if(vstep <= 0 || !MathIsValidNumber(raw))
     {
      reason = "volume_below_min";
      return 0;
     }
   double steps = MathFloor(raw / vstep + MTB_STEP_EPSILON);
   double volume = NormalizeDouble(steps * vstep, 8);
   if(volume < vmin - MTB_VOLUME_EPSILON || volume <= 0)
     {
      reason = "volume_below_min";
      return 0;
     }
   return volume;
  }

//+------------------------------------------------------------------+
//| The server's clock minus UTC, in seconds, to the nearest quarter |
//| hour. TimeTradeServer() is the server time as the terminal       |
//| keeps it: unlike TimeCurrent() (the last quote's time) it goes   |
//| on when no quote arrives, so the broker day rolls at midnight    |
//| even on a quiet market.                                          |
//+------------------------------------------------------------------+
long MtbServerUtcOffset()
  {
   return (long)MathRound(((long)TimeTradeServer() - (long)TimeGMT()) / 900.0) * 900;
  }

//+------------------------------------------------------------------+
//| TradingHours: "08:00-12:00,13:30-17:00" in server time; start    |
//| included, end excluded, 24:00 only as an end, an end before the  |
//| start crosses midnight ("22:00-02:00"). Empty: any time.         |
//+------------------------------------------------------------------+
class CTradingHours
  {
private:
   int               m_start[];
   int               m_end[];
   int               m_count;

   //--- "HH:MM" at pos as minutes of the day, or -1
   int               Minutes(const string text, const int pos)
     {
      for(int i = 0; i < 5; i++)
        {
         ushort c = StringGetCharacter(text, pos + i);
         if(i == 2 ? (c != ':') : (c < '0' || c > '9'))
            return -1;
        }
      int h = (int)StringToInteger(StringSubstr(text, pos, 2));
      int m = (int)StringToInteger(StringSubstr(text, pos + 3, 2));
      if(h > 24 || m > 59)
         return -1;
      return h * 60 + m;
     }

public:
                     CTradingHours() : m_count(0) {}

   bool              Parse(const string text)
     {
      m_count = 0;
      ArrayResize(m_start, 0);
      ArrayResize(m_end, 0);
      string all = text;
      StringTrimLeft(all);
      StringTrimRight(all);
      if(all == "")
         return true;
      string parts[];
      int n = StringSplit(all, ',', parts);
      for(int i = 0; i < n; i++)
        {
         string part = parts[i];
         StringTrimLeft(part);
         StringTrimRight(part);
         if(StringLen(part) != 11 || StringGetCharacter(part, 5) != '-')
            return false;
         int start = Minutes(part, 0);
         int end = Minutes(part, 6);
         if(start < 0 || end < 0 || start >= 1440 || end > 1440 || start == end)
            return false;
         ArrayResize(m_start, m_count + 1);
         ArrayResize(m_end, m_count + 1);
         m_start[m_count] = start;
         m_end[m_count] = end;
         m_count++;
        }
      return true;
     }

   bool              Contains(const datetime server_time)
     {
      if(m_count == 0)
         return true;
      int minute = (int)(((long)server_time % MTB_DAY_SECONDS) / 60);
      for(int i = 0; i < m_count; i++)
        {
         if(m_start[i] < m_end[i])
           {
            if(minute >= m_start[i] && minute < m_end[i])
               return true;
           }
         else
            if(minute >= m_start[i] || minute < m_end[i])
               return true;
        }
      return false;
     }
  };

//+------------------------------------------------------------------+
//| The daily loss limit's state, kept in risk.txt beside state.txt: |
//| "daily <day> <start equity> <paused 0|1> <trips>". A broker day  |
//| is TimeTradeServer() / 86400 (server time).                      |
//+------------------------------------------------------------------+
class CDailyLoss
  {
private:
   string            m_file;

public:
   long              day;
   double            start_equity;
   bool              paused;
   int               trips;

                     CDailyLoss() : m_file(""), day(-1), start_equity(0), paused(false), trips(0) {}

   void              Load(const string file)
     {
      m_file = file;
      string lines[];
      int n = MtbReadLines(file, lines);
      for(int i = 0; i < n; i++)
        {
         string parts[];
         if(StringSplit(lines[i], ' ', parts) != 5 || parts[0] != "daily")
            continue;
         day = StringToInteger(parts[1]);
         start_equity = StringToDouble(parts[2]);
         paused = (parts[3] == "1");
         trips = (int)StringToInteger(parts[4]);
        }
     }

   void              Save()
     {
      string lines[];
      ArrayResize(lines, 1);
      lines[0] = "daily " + IntegerToString(day) + " " + DoubleToString(start_equity, 2) + " " +
                 (paused ? "1" : "0") + " " + IntegerToString(trips);
      if(!MtbWriteLines(m_file, lines, 1))
         Print("mtbridge: cannot write ", m_file, ": error ", IntegerToString(GetLastError()));
     }

   //--- a new broker day starts from this equity; true if that ended a pause
   bool              Roll(const long today, const double equity)
     {
      if(today == day)
         return false;
      bool ended = paused;
      day = today;
      start_equity = equity;
      paused = false;
      trips = 0;
      Save();
      return ended;
     }

   //--- pause when the day's loss reached max_loss_pct of its starting equity; true if it paused now
   bool              Trip(const double equity, const double max_loss_pct)
     {
      if(paused || max_loss_pct <= 0 || start_equity <= 0)
         return false;
      if(start_equity - equity < start_equity * max_loss_pct / 100.0)
         return false;
      paused = true;
      trips++;
      Save();
      return true;
     }

   //--- an operator's resume: trading again, with a fresh allowance measured from this equity
   bool              Resume(const double equity)
     {
      if(!paused)
         return false;
      paused = false;
      start_equity = equity;
      Save();
      return true;
     }
  };

#endif // MTBRIDGE_RISK_MQH
