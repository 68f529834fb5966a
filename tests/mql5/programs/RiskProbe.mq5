//+------------------------------------------------------------------+
//| RiskProbe.mq5 - test driver for the shipped Risk.mqh.            |
//| Reads one case per line from InputFile (Common/Files) and writes |
//| one result per line to OutputFile:                               |
//|   size <mode> <signal volume> <multiplier> <fixed> <risk %>      |
//|        <equity> <entry> <sl> <tick size> <tick value> <vol min>  |
//|        <vol max> <vol step> <max lot>  -> "<volume> <reason|->"  |
//|   hours <server time> <TradingHours text> -> "1", "0", "invalid" |
//|   loss <start equity> <equity> <max loss %> -> "1" (trips), "0"  |
//+------------------------------------------------------------------+
#property script_show_inputs

#include <MTBridge\Risk.mqh>

input string InputFile  = "risk_in.txt";
input string OutputFile = "risk_out.txt";

string SizeCase(const string &f[])
  {
   string reason = "";
   double v = MtbSizeVolume((ENUM_MTB_LOT_MODE)StringToInteger(f[1]), StringToDouble(f[2]), StringToDouble(f[3]),
                            StringToDouble(f[4]), StringToDouble(f[5]), StringToDouble(f[6]), StringToDouble(f[7]),
                            StringToDouble(f[8]), StringToDouble(f[9]), StringToDouble(f[10]),
                            StringToDouble(f[11]), StringToDouble(f[12]), StringToDouble(f[13]),
                            StringToDouble(f[14]), reason);
   return DoubleToString(v, 8) + " " + (reason == "" ? "-" : reason);
  }

string HoursCase(const string line)
  {
   //--- "hours <time> <text>": the text is the rest of the line, spaces included
   int at = StringFind(line, " ", 6);
   datetime t = (datetime)StringToInteger(StringSubstr(line, 6, at - 6));
   CTradingHours hours;
   if(!hours.Parse(StringSubstr(line, at + 1)))
      return "invalid";
   return hours.Contains(t) ? "1" : "0";
  }

string LossCase(const string &f[])
  {
   CDailyLoss daily;
   daily.Load("risk_probe_state.txt");
   daily.start_equity = StringToDouble(f[1]);
   daily.paused = false;
   return daily.Trip(StringToDouble(f[2]), StringToDouble(f[3])) ? "1" : "0";
  }

void OnStart()
  {
   string lines[];
   int n = MtbReadLines(InputFile, lines);
   string out[];
   ArrayResize(out, n > 0 ? n : 0);
   for(int i = 0; i < n; i++)
     {
      string f[];
      int k = StringSplit(lines[i], ' ', f);
      if(k == 15 && f[0] == "size")
         out[i] = SizeCase(f);
      else
         if(k >= 2 && f[0] == "hours")
            out[i] = HoursCase(lines[i]);
         else
            if(k == 4 && f[0] == "loss")
               out[i] = LossCase(f);
            else
               out[i] = "bad case";
     }
   if(!MtbWriteLines(OutputFile, out, n))
      Print("cannot write ", OutputFile, " error ", IntegerToString(GetLastError()));
  }
