//+------------------------------------------------------------------+
//| AutobahnClient.mq5 - drives the Autobahn TestSuite client cases  |
//| (kosoku -m fuzzingserver) with the shipped WebSocketClient.mqh:  |
//| every message is echoed back, all work happens in OnTimer.       |
//+------------------------------------------------------------------+
#property copyright "mtbridge"
#property version   "1.00"

#include <MTBridge\WebSocketClient.mqh>

input string ServerUrl = "ws://127.0.0.1:9001";
input string Agent     = "mtbridge-mql5";

#define PHASE_COUNT   0
#define PHASE_CASES   1
#define PHASE_REPORT  2

CWebSocketClient *g_ws = NULL;
int  g_phase = PHASE_COUNT;
int  g_case_count = 0;
int  g_case = 0;
bool g_done = false;

//+------------------------------------------------------------------+
bool OpenPath(const string path)
  {
   if(!g_ws.Open(ServerUrl + path, "", ""))
     {
      Print("open failed: ", g_ws.ErrorText());
      return false;
     }
   return true;
  }

//+------------------------------------------------------------------+
void Advance()
  {
   if(g_phase == PHASE_COUNT)
     {
      Print("cases: ", g_case_count);
      g_phase = PHASE_CASES;
      g_case = 1;
     }
   else
      if(g_phase == PHASE_CASES)
         g_case++;
   if(g_phase == PHASE_CASES && g_case > g_case_count)
     {
      g_phase = PHASE_REPORT;
      OpenPath("/updateReports?agent=" + Agent);
      return;
     }
   if(g_phase == PHASE_CASES)
     {
      OpenPath("/runCase?case=" + IntegerToString(g_case) + "&agent=" + Agent);
      return;
     }
   g_done = true;
   ExpertRemove();
  }

//+------------------------------------------------------------------+
int OnInit()
  {
   g_ws = new CWebSocketClient();
   g_ws.SetMaxMessageSize(64 * 1024 * 1024);
   g_ws.SetTimeouts(5000, 60000, 10000, 5000);
   if(!OpenPath("/getCaseCount"))
      return INIT_FAILED;
   EventSetMillisecondTimer(1);
   return INIT_SUCCEEDED;
  }

//+------------------------------------------------------------------+
void OnTimer()
  {
   for(int i = 0; i < 1000 && !g_done; i++)
     {
      int ev = g_ws.Poll();
      if(ev == WS_EVENT_NONE)
         break;
      if(ev == WS_EVENT_MESSAGE)
        {
         if(g_phase == PHASE_COUNT)
            g_case_count = (int)StringToInteger(g_ws.MessageText());
         else
            if(g_phase == PHASE_CASES)
               g_ws.SendMessageBack();
        }
      else
         if(ev == WS_EVENT_CLOSED)
            Advance();
     }
  }

//+------------------------------------------------------------------+
void OnDeinit(const int reason)
  {
   EventKillTimer();
   if(g_ws != NULL)
     {
      g_ws.Shutdown(WS_CLOSE_GOING_AWAY);
      delete g_ws;
      g_ws = NULL;
     }
   Print("done: ", g_done ? "yes" : "no", " after case ", g_case, " of ", g_case_count);
  }
