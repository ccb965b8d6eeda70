// The tab's views, in update order; the page lays them out by each view's slot (view.js).
// Adding a view: one new file with a CanvasView subclass, and one line here.

import {RunComparison} from "./compare.js";
import {FlowView} from "./flow.js";
import {HeadDetail} from "./headdetail.js";
import {HeadGrid} from "./headgrid.js";
import {TokenInfluence} from "./influence.js";
import {Timeline} from "./timeline.js";
import {checkView} from "./view.js";

export const VIEWS = [
  Timeline,
  FlowView,
  HeadGrid,
  HeadDetail,
  TokenInfluence,
  RunComparison,
].map(checkView);
